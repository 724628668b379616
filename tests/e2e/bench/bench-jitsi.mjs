// Benchmark (issue 13): cloakroomd against a lib-jitsi-meet page in headless
// Chromium doing the same job in a Jitsi P2P call with Jitsi's E2EE, in one
// run, one after the other, each with the same source:
//   - a source page (lib-jitsi-meet, not measured) in the room publishes
//     640×480@20 with E2EE;
//   - phase "daemon": cloakroomd joins (`jitsi+ws://…`), offers P2P, sends
//     640×480@20 VP8 sealed with its Olm-exchanged key and opens the source's;
//   - phase "chromium": a lib-jitsi-meet page in a browser of its own joins,
//     starts P2P with the source, sends 640×480@20 VP8 with E2EE, decodes it.
// CPU (% of one core, whole process tree, steady window), PSS (summed over
// the tree) and join→first frame (daemon: spawn to its first sealed video
// frame sent, its status line's first_video_ms; Chromium: browser launch to
// the first encoded frame of the P2P session, polled every 50 ms), measured
// as bench-daemon.mjs measures (procstat.mjs).
import { spawn } from 'node:child_process';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { startProsody, sleep } from '../lib/prosody.mjs';
import { CHROMIUM, CHROMIUM_ARGS, launchBrowser } from '../lib/browser.mjs';
import { startJitsiPageServer, openJitsiParticipant } from '../jitsi/page.mjs';
import { measure } from './procstat.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));
const REPO = join(HERE, '..', '..', '..');
const BIN = process.env.CLOAKROOMD_BIN || join(REPO, 'target', 'debug', 'cloakroomd');
const ROOM = 'bench';
const WARMUP_MS = Number(process.env.BENCH_WARMUP_MS || 8000);
const WINDOW_MS = Number(process.env.BENCH_WINDOW_MS || 20000);

const prosody = await startProsody();
const pages = await startJitsiPageServer();
const sourceBrowser = await launchBrowser();
const results = {};
try {
  const source = await openJitsiParticipant(sourceBrowser, { pageUrl: pages.url, prosody, room: ROOM, display: 'source' });

  // Phase 1: the daemon.
  const t0 = Date.now();
  const plugins = process.env.BENCH_DAEMON_GST_PLUGINS;
  const env = plugins ? { ...process.env, GST_PLUGIN_SYSTEM_PATH_1_0: plugins, GST_PLUGIN_PATH_1_0: '', GST_REGISTRY_1_0: join(plugins, 'registry.bin') } : process.env;
  const daemon = spawn(BIN, ['--join', '-', '--codec', 'vp8', '--mode', '640x480@20', '--name', 'bench-room', '--status-interval-ms', '500'], { stdio: ['pipe', 'pipe', 'ignore'], env });
  daemon.stdin.end(`${prosody.jitsiLink(ROOM)}\n`);
  let status = null;
  daemon.stdout.on('data', (b) => { for (const l of String(b).split('\n')) if (l.startsWith('{')) status = JSON.parse(l); });
  while (!(status?.received?.decoded_video > 0)) {
    if (Date.now() - t0 > 60000) throw new Error(`daemon did not start receiving: ${JSON.stringify(status)}`);
    await sleep(200);
  }
  const joinMs = status.sent.first_video_ms;
  await sleep(WARMUP_MS);
  const before = status;
  const m = await measure(daemon.pid, WINDOW_MS);
  const after = status;
  results.daemon = { ...m, joinToFirstFrameMs: joinMs, sentFps: (after.sent.video_frames - before.sent.video_frames) / (WINDOW_MS / 1000), decodedFps: (after.received.decoded_video - before.received.decoded_video) / (WINDOW_MS / 1000), decryptFailures: after.received.decrypt_failures };
  daemon.kill('SIGTERM');
  await new Promise((r) => daemon.on('exit', r));
  await source.waitFor((s) => !s.p2pActive, 15000, 'the source\'s P2P session with the daemon ended');

  // Phase 2: a lib-jitsi-meet page doing the same, in a browser of its own.
  const l0 = Date.now();
  const srv = await chromium.launchServer({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
  const browser = await chromium.connect(srv.wsEndpoint());
  const page = await openJitsiParticipant(browser, { pageUrl: pages.url, prosody, room: ROOM, display: 'bench-chromium' });
  await page.waitForParticipant(source.myId, 20000, { e2ee: true });
  await page.startP2P();
  let s;
  for (;;) {
    s = await page.stats();
    if (s.p2pActive && (s.rtp?.sent?.framesEncoded ?? 0) > 0) break;
    if (Date.now() - l0 > 60000) throw new Error('chromium did not send');
    await sleep(50);
  }
  const firstMs = Date.now() - l0;
  await page.waitFor((x) => (x.rtp?.video?.framesDecoded ?? 0) > 0, 30000, 'chromium decoding the source');
  await sleep(WARMUP_MS);
  const b = await page.stats();
  const mc = await measure(srv.process().pid, WINDOW_MS);
  const a = await page.stats();
  results.chromium = { ...mc, joinToFirstFrameMs: firstMs, sentFps: (a.rtp.sent.framesEncoded - b.rtp.sent.framesEncoded) / (WINDOW_MS / 1000), decodedFps: (a.rtp.video.framesDecoded - b.rtp.video.framesDecoded) / (WINDOW_MS / 1000) };
  await page.close();
  await browser.close();
  await srv.close();
  await source.close();
} finally {
  await sourceBrowser.close();
  await pages.close();
  await prosody.stop();
}

const d = results.daemon;
const c = results.chromium;
const row = (name, x) => `| ${name.padEnd(10)} | ${x.cpuPercent.toFixed(1).padStart(6)} | ${x.pssMb.toFixed(1).padStart(7)} | ${String(x.joinToFirstFrameMs).padStart(8)} | ${x.sentFps.toFixed(1).padStart(6)} | ${x.decodedFps.toFixed(1).padStart(5)} | ${String(x.processes).padStart(5)} |`;
console.log(`Jitsi P2P with E2EE: window ${WINDOW_MS / 1000} s after ${WARMUP_MS / 1000} s warm-up; 640×480@20 VP8 sent, one stream received`);
console.log('| who        | CPU %  | PSS MB  | join→1st | sent/s | dec/s | procs |');
console.log('|------------|--------|---------|----------|--------|-------|-------|');
console.log(row('cloakroomd', d));
console.log(row('lib-jitsi', c));
console.log(`ratios daemon/chromium: CPU ${(d.cpuPercent / c.cpuPercent).toFixed(2)} (goal ≤ 0.5), PSS ${(d.pssMb / c.pssMb).toFixed(3)} (goal ≤ 0.1), join→first frame ${(d.joinToFirstFrameMs / c.joinToFirstFrameMs).toFixed(2)} (goal ≤ 0.5)`);
console.log(JSON.stringify(results));
