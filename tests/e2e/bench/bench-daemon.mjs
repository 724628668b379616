// Benchmark (issue 4, item 7): cloakroomd against headless Chromium doing the
// same job through the same Janus, in one run, one after the other so each
// receives exactly one encrypted stream:
//   - a source browser (not measured) publishes an encrypted stream;
//   - phase "daemon": cloakroomd publishes 640×480@20 VP8, encrypted, and
//     receives and decrypts the source's stream;
//   - phase "chromium": a separate headless Chromium page publishes
//     640×480@20 VP8 (fake camera) encrypted and receives the source's stream.
// For each: CPU (% of one core, utime+stime of the whole process tree over a
// steady window) and memory (PSS, summed over the tree, from smaps_rollup), and
// join-to-first-frame: from starting the process (daemon: spawn; Chromium:
// browser launch, and separately page load) to the first encrypted video frame
// sent to Janus (daemon: its status line's first_video_ms; Chromium: the first
// getStats poll with outbound framesSent > 0, polled every 50 ms).
// The daemon runs with the device image's GStreamer plugins when
// tools/bench-daemon says so (BENCH_DAEMON_GST_PLUGINS, the default there).
import { spawn } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { TICK, measure } from './procstat.mjs';
import { randomBytes } from 'node:crypto';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { startJanus, sleep } from '../lib/janus.mjs';
import { CHROMIUM, CHROMIUM_ARGS, launchBrowser, openParticipant, startPageServer } from '../lib/browser.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));
const REPO = join(HERE, '..', '..', '..');
const BIN = process.env.CLOAKROOMD_BIN || join(REPO, 'target', 'debug', 'cloakroomd');
const ROOM = 1234;
const WARMUP_MS = Number(process.env.BENCH_WARMUP_MS || 8000);
const WINDOW_MS = Number(process.env.BENCH_WINDOW_MS || 20000);
// BENCH_ONLY=daemon skips the Chromium phase (for iterating on the daemon);
// BENCH_THREADS=1 also prints the daemon's CPU per thread name and its memory
// breakdown (smaps_rollup), to see where it goes.
const ONLY = process.env.BENCH_ONLY || '';
const THREADS = process.env.BENCH_THREADS === '1';

class SkipChromium extends Error {}

const key = randomBytes(32);
const keyHex = key.toString('hex');

/** utime+stime ticks per thread name (comm) of one process. */
function threadTicks(pid) {
  const out = new Map();
  let tasks = [];
  try { tasks = readdirSync(`/proc/${pid}/task`); } catch { return out; }
  for (const t of tasks) {
    try {
      const stat = readFileSync(`/proc/${pid}/task/${t}/stat`, 'utf8');
      const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      out.set(name, (out.get(name) ?? 0) + Number(rest[11]) + Number(rest[12]));
    } catch { /* gone */ }
  }
  return out;
}

function printThreads(pid, before, seconds) {
  const after = threadTicks(pid);
  const rows = [...after].map(([name, t]) => [name, ((t - (before.get(name) ?? 0)) / TICK / seconds) * 100]).sort((a, b) => b[1] - a[1]);
  console.log(`daemon threads (${rows.length} names), CPU % of one core:`);
  for (const [name, pct] of rows) if (pct >= 0.05) console.log(`  ${name.padEnd(16)} ${pct.toFixed(1).padStart(5)}`);
  try {
    const rollup = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
    console.log(rollup.split('\n').filter((l) => /^(Rss|Pss|Pss_Anon|Pss_File|Anonymous|Private_Dirty|Shared_Clean):/.test(l)).map((l) => `  ${l.replace(/\s+/g, ' ')}`).join('\n'));
  } catch { /* gone */ }
  console.log('  largest mappings by PSS (kB):');
  for (const [name, kb, n] of topMappings(pid, 12)) console.log(`  ${String(kb).padStart(7)}  ${String(n).padStart(4)}×  ${name}`);
}

/** PSS per mapped file ([anon] and [heap] together), largest first. */
function topMappings(pid, count) {
  const by = new Map();
  let name = '';
  try {
    for (const l of readFileSync(`/proc/${pid}/smaps`, 'utf8').split('\n')) {
      const head = /^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \S+\s*(.*)$/.exec(l);
      if (head) {
        name = head[1] || '[anon]';
        continue;
      }
      const m = /^Pss:\s+(\d+) kB/.exec(l);
      if (m) {
        const [kb, n] = by.get(name) ?? [0, 0];
        by.set(name, [kb + Number(m[1]), n + 1]);
      }
    }
  } catch { /* gone */ }
  return [...by].map(([k, [kb, n]]) => [k, kb, n]).sort((a, b) => b[1] - a[1]).slice(0, count);
}

const janus = await startJanus({ room: ROOM });
const server = await startPageServer();
const sourceBrowser = await launchBrowser();
const results = {};
try {
  const source = await openParticipant(sourceBrowser, { pageUrl: server.url, wsUrl: janus.wsUrl, room: ROOM, keyHex, publish: true, subscribe: false, display: 'source' });

  // Phase 1: the daemon.
  const { host } = new URL(janus.wsUrl);
  const t0 = Date.now();
  // tools/bench-daemon gives the device image's plugin set (its own registry).
  const plugins = process.env.BENCH_DAEMON_GST_PLUGINS;
  const env = plugins ? { ...process.env, GST_PLUGIN_SYSTEM_PATH_1_0: plugins, GST_PLUGIN_PATH_1_0: '', GST_REGISTRY_1_0: join(plugins, 'registry.bin') } : process.env;
  const daemon = spawn(BIN, ['--join', '-', '--codec', 'vp8', '--mode', '640x480@20', '--name', 'bench-room', '--status-interval-ms', '500'], { stdio: ['pipe', 'pipe', 'ignore'], env });
  daemon.stdin.end(`janus+ws://${host}/?room=${ROOM}#e2ee=${key.toString('base64url')}\n`);
  let status = null;
  daemon.stdout.on('data', (b) => { for (const l of String(b).split('\n')) if (l.startsWith('{')) status = JSON.parse(l); });
  while (!(status?.received?.decoded_video > 0)) {
    if (Date.now() - t0 > 60000) throw new Error(`daemon did not start receiving: ${JSON.stringify(status)}`);
    await sleep(200);
  }
  const joinMs = status.sent.first_video_ms;
  await sleep(WARMUP_MS);
  const before = status;
  const threads0 = threadTicks(daemon.pid);
  const m = await measure(daemon.pid, WINDOW_MS);
  const after = status;
  if (THREADS) printThreads(daemon.pid, threads0, WINDOW_MS / 1000);
  results.daemon = { ...m, joinToFirstFrameMs: joinMs, sentFps: (after.sent.video_frames - before.sent.video_frames) / (WINDOW_MS / 1000), decodedFps: (after.received.decoded_video - before.received.decoded_video) / (WINDOW_MS / 1000), decryptFailures: after.received.decrypt_failures };
  daemon.kill('SIGTERM');
  await new Promise((r) => daemon.on('exit', r));

  // Phase 2: Chromium doing the same, in a browser of its own.
  if (ONLY === 'daemon') throw new SkipChromium();
  const l0 = Date.now();
  const srv = await chromium.launchServer({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
  const browser = await chromium.connect(srv.wsEndpoint());
  const p0 = Date.now();
  const page = await openParticipant(browser, { pageUrl: server.url, wsUrl: janus.wsUrl, room: ROOM, keyHex, publish: true, subscribe: true, display: 'bench-chromium', video: { width: 640, height: 480, frameRate: 20 } });
  let s;
  for (;;) {
    s = await page.stats();
    if (s.sent.framesEncoded > 0 && s.worker.encrypted.video > 0) break;
    if (Date.now() - l0 > 60000) throw new Error('chromium did not send');
    await sleep(50);
  }
  const firstMs = Date.now() - l0;
  const firstFromPageMs = Date.now() - p0;
  await page.waitFor((x) => x.video.framesDecoded > 0, 30000, 'chromium decoding the source');
  await sleep(WARMUP_MS);
  const b = await page.stats();
  const mc = await measure(srv.process().pid, WINDOW_MS);
  const a = await page.stats();
  results.chromium = { ...mc, joinToFirstFrameMs: firstMs, joinToFirstFrameFromPageMs: firstFromPageMs, sentFps: (a.sent.framesEncoded - b.sent.framesEncoded) / (WINDOW_MS / 1000), decodedFps: (a.video.framesDecoded - b.video.framesDecoded) / (WINDOW_MS / 1000), decryptFailures: a.worker.decryptFailures.video };
  await page.close();
  await browser.close();
  await srv.close();
  await source.close();
} catch (e) {
  if (!(e instanceof SkipChromium)) throw e;
} finally {
  await sourceBrowser.close();
  await server.close();
  await janus.stop();
}

const d = results.daemon;
const c = results.chromium;
if (!c) {
  console.log(JSON.stringify(results));
  process.exit(0);
}
const row = (name, x) => `| ${name.padEnd(9)} | ${x.cpuPercent.toFixed(1).padStart(6)} | ${x.pssMb.toFixed(1).padStart(7)} | ${String(x.joinToFirstFrameMs).padStart(8)} | ${x.sentFps.toFixed(1).padStart(5)} | ${x.decodedFps.toFixed(1).padStart(5)} | ${x.processes} |`;
console.log(`window ${WINDOW_MS / 1000} s after ${WARMUP_MS / 1000} s warm-up; 640×480@20 VP8 sent encrypted, one encrypted stream received`);
console.log('| who       | CPU %  | PSS MB  | join→1st | sent/s | dec/s | procs |');
console.log('|-----------|--------|---------|----------|-------|-------|-------|');
console.log(row('cloakroomd', d));
console.log(row('chromium', c));
console.log(`ratios daemon/chromium: CPU ${(d.cpuPercent / c.cpuPercent).toFixed(2)} (goal ≤ 0.5), PSS ${(d.pssMb / c.pssMb).toFixed(3)} (goal ≤ 0.1), join→first frame ${(d.joinToFirstFrameMs / c.joinToFirstFrameMs).toFixed(2)} (goal ≤ 0.5; vs Chromium from page load ${(d.joinToFirstFrameMs / c.joinToFirstFrameFromPageMs).toFixed(2)})`);
console.log(JSON.stringify(results));
