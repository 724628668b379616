// The admin page's device checks in real Chromium against the real daemon
// (`cloakroomd --config`, test camera and test microphone, speaker "none"),
// idle and in a real Janus meeting (Debian's janus in a network namespace,
// so the test needs root):
//
// - the camera preview shows the test camera's moving picture (two
//   snapshots differ), in a meeting too, where it is the room's own camera
//   (4:3, the sent mode) and not the room screen's 16:9 grid of others;
// - the microphone meter moves with the test microphone's tone;
// - the test tone is refused with the reason when the speaker is "none";
// - the device choices list what `cloakroom devices` lists, plus
//   auto/test/none;
// - addresses, version, uptime; the log download; participants with their
//   encryption state; restart (exit code 75, the page comes back);
// - axe-core clean on the page with these cards, idle and in a meeting;
// - the checks cost nothing once the page is closed: their pipelines'
//   threads are gone within seconds, and the daemon's CPU is what it was
//   before the page was opened.
//
// The daemon binary: CLOAKROOMD_BIN, or target/debug/cloakroomd; the CLI:
// CLOAKROOM_BIN, or target/debug/cloakroom.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { keepFailureLogs } from './lib/artifacts.mjs';
import { startJanus, sleep } from './lib/janus.mjs';
import { launchBrowser, openParticipant, startPageServer } from './lib/browser.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));
const REPO = join(HERE, '..', '..');
const BIN = process.env.CLOAKROOMD_BIN || join(REPO, 'target', 'debug', 'cloakroomd');
const CLI = process.env.CLOAKROOM_BIN || join(REPO, 'target', 'debug', 'cloakroom');
const SHOTS = process.env.CLOAKROOM_SHOTS || '/tmp/cloakroom-shots';
const ROOM = 5151;
const keyBytes = randomBytes(32);
const keyHex = keyBytes.toString('hex');
const keyB64 = keyBytes.toString('base64url');
const AXE_SOURCE = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');
const RESTART_EXIT_CODE = 75;

let janus, pages, browser, dir, device;
const usedCodes = new Set();
const participants = new Set();

/** Starts `cloakroomd --config` on the test's state dir; resolves once the page is up. */
async function startDevice() {
  const config = join(dir, 'cloakroom.toml');
  writeFileSync(config, [
    '[room]', 'name = "Greenhouse"',
    '[devices]', 'camera = "test"', 'microphone = "test"', 'speaker = "none"',
    '[video]', 'resolution = "320x240"', 'framerate = 15',
    '[web]', 'bind = "127.0.0.1"', 'https_port = 0', 'http_port = 0',
    '[links]', `plain_ws_hosts = ["${new URL(janus.wsUrl).hostname}"]`,
    '[paths]', `state_dir = "${join(dir, 'state')}"`, '',
  ].join('\n'));
  // The same HTTPS port after a restart, so that the open page finds the daemon again.
  if (device?.port) {
    writeFileSync(config, readFileSync(config, 'utf8').replace('https_port = 0', `https_port = ${device.port}`));
  }
  const child = spawn(BIN, ['--config', config, '--print-pairing'], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, RUST_LOG: 'info,webrtc=warn,rtc=warn,cloakroom_appliance::web=debug' },
  });
  const d = { child, stderr: [], info: {}, exit: null };
  let buf = '';
  child.stdout.on('data', (chunk) => {
    buf += chunk;
    const lines = buf.split('\n');
    buf = lines.pop();
    for (const line of lines) {
      const i = line.indexOf(' ');
      if (i > 0) d.info[line.slice(0, i)] = line.slice(i + 1);
    }
  });
  let ebuf = '';
  child.stderr.on('data', (chunk) => { ebuf += chunk; const l = ebuf.split('\n'); ebuf = l.pop(); d.stderr.push(...l); });
  d.exited = new Promise((resolve) => child.on('exit', (code, signal) => { d.exit = { code, signal }; resolve(d.exit); }));
  const deadline = Date.now() + 30000;
  while (!(d.info.url && d.info.code)) {
    if (d.exit) throw new Error(`cloakroomd exited ${JSON.stringify(d.exit)}\n${d.stderr.join('\n')}`);
    if (Date.now() > deadline) throw new Error(`cloakroomd did not print its page within 30 s\n${d.stderr.join('\n')}`);
    await sleep(100);
  }
  d.port = Number(new URL(d.info.url).port);
  d.stop = async () => {
    if (!d.exit) child.kill('SIGTERM');
    const r = await Promise.race([d.exited, sleep(15000).then(() => null)]);
    if (!r) { child.kill('SIGKILL'); await d.exited; }
    return d.exit;
  };
  return d;
}

before(async () => {
  assert.ok(existsSync(BIN), `cloakroomd not found at ${BIN}: run \`cargo build -p cloakroomd\` or set CLOAKROOMD_BIN`);
  assert.ok(existsSync(CLI), `cloakroom not found at ${CLI}: run \`cargo build -p cloakroom\` or set CLOAKROOM_BIN`);
  mkdirSync(SHOTS, { recursive: true });
  dir = mkdtempSync(join(tmpdir(), 'cloakroom-checks-e2e-'));
  janus = await startJanus({ room: ROOM });
  pages = await startPageServer();
  browser = await launchBrowser();
  device = await startDevice();
});

after(async () => {
  for (const p of participants) await p.close();
  await browser?.close();
  await device?.stop();
  await pages?.close();
  await janus?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function step(name, fn) {
  return async (t) => {
    try {
      await fn(t);
    } catch (e) {
      await keepFailureLogs(e, { prefix: 'checks-', name, janus, participants, extra: { daemon: device?.stderr.join('\n') ?? '' } });
      throw e;
    }
  };
}

const newContext = (opts = {}) => browser.newContext({ ignoreHTTPSErrors: true, ...opts });
const waitText = (page, id, text, timeout = 30000) =>
  page.waitForFunction(([i, t]) => document.getElementById(i).textContent === t, [id, text], { timeout });

async function freshCode() {
  const deadline = Date.now() + 15000;
  while (usedCodes.has(device.info.code) && Date.now() < deadline) await sleep(200);
  assert.ok(!usedCodes.has(device.info.code), 'the room shows a new pairing code after one was used');
  return device.info.code;
}

/** A new browser context paired as admin; on the admin page. */
async function pairedAdminPage() {
  const ctx = await newContext({ viewport: { width: 1100, height: 1600 } });
  const page = await ctx.newPage();
  await page.goto(device.info.url);
  await page.locator('#pair').waitFor({ state: 'visible', timeout: 20000 });
  const code = await freshCode();
  await page.fill('#code', code);
  await page.click('#pair-form button');
  await page.locator('#admin').waitFor({ state: 'visible', timeout: 20000 });
  usedCodes.add(code);
  return { ctx, page };
}

async function assertAccessible(page, what, t) {
  if (!(await page.evaluate(() => typeof window.axe === 'object'))) await page.evaluate(AXE_SOURCE);
  const violations = await page.evaluate(async () => {
    const r = await window.axe.run(document, {
      runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] },
      resultTypes: ['violations'],
    });
    return r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, targets: v.nodes.map((n) => n.target.join(' ')) }));
  });
  const lines = violations.map((v) => `${v.id} (${v.impact}, ${v.targets.length}×): ${v.help} — ${v.targets.join(', ')}`);
  t?.diagnostic(`axe on ${what}: ${violations.length} violation(s)${lines.length ? ': ' + lines.join(' | ') : ''}`);
  assert.equal(violations.length, 0, `axe-core on ${what}:\n  ${lines.join('\n  ')}`);
}

/**
 * The preview as the page shows it: its size and grey levels on a 32×24 grid,
 * read back through a canvas (the picture is a same-origin blob).
 */
async function previewPixels(page) {
  return page.evaluate(() => {
    const img = document.getElementById('preview');
    if (img.hidden || !img.complete || img.naturalWidth === 0) return null;
    const c = document.createElement('canvas');
    c.width = 32; c.height = 24;
    const g = c.getContext('2d');
    g.drawImage(img, 0, 0, 32, 24);
    const d = g.getImageData(0, 0, 32, 24).data;
    const grey = [];
    for (let i = 0; i < d.length; i += 4) grey.push(Math.round((d[i] + d[i + 1] + d[i + 2]) / 3));
    return { src: img.src, width: img.naturalWidth, height: img.naturalHeight, grey };
  });
}

/** Two preview pictures shown at least a second apart: they differ (the test picture moves). */
async function assertPreviewMoves(page, what, t) {
  await page.waitForFunction(() => { const i = document.getElementById('preview'); return !i.hidden && i.complete && i.naturalWidth > 0; }, null, { timeout: 20000 });
  const a = await previewPixels(page);
  await page.waitForFunction((src) => { const i = document.getElementById('preview'); return i.src !== src && i.complete && i.naturalWidth > 0; }, a.src, { timeout: 10000 });
  await sleep(1100);
  await page.waitForFunction(() => { const i = document.getElementById('preview'); return i.complete && i.naturalWidth > 0; });
  const b = await previewPixels(page);
  const changed = a.grey.filter((v, i) => Math.abs(v - b.grey[i]) > 24).length;
  t.diagnostic(`${what}: preview ${b.width}x${b.height}, ${changed} of ${a.grey.length} cells changed between two snapshots`);
  assert.notEqual(a.src, b.src, `${what}: the page showed a new snapshot`);
  assert.ok(changed >= 3, `${what}: two snapshots a second apart differ (${changed} cells changed)`);
  return b;
}

/** The meter's values over ~3 s: they move with the test microphone's ticks. */
async function assertMeterMoves(page, what, t) {
  await page.waitForFunction(() => document.getElementById('mic-db').textContent.startsWith('peak'), null, { timeout: 20000 });
  const values = [];
  const texts = new Set();
  for (let i = 0; i < 15; i++) {
    values.push(await page.evaluate(() => document.getElementById('mic-meter').value));
    texts.add(await page.textContent('#mic-db'));
    await sleep(200);
  }
  const hi = Math.max(...values), lo = Math.min(...values);
  t.diagnostic(`${what}: meter values ${values.map((v) => Math.round(v)).join(' ')}; texts: ${[...texts].join(' | ')}; error: ${await page.textContent('#mic-error')}`);
  assert.ok(hi > -30, `${what}: the test tone's ticks reach the meter (${values.join(', ')})`);
  assert.ok(hi - lo >= 10, `${what}: the meter moves (${values.join(', ')})`);
}

/**
 * The daemon's threads of the device checks' pipelines: GStreamer names a
 * source's streaming thread `<element>:src`, and the checks' sources are
 * `camera` and `microphone` (the room screen's is `background`).
 */
function checkThreads() {
  const pid = device.child.pid;
  return readdirSync(`/proc/${pid}/task`)
    .map((t) => { try { return readFileSync(`/proc/${pid}/task/${t}/comm`, 'utf8').trim(); } catch { return ''; } })
    .filter((n) => n === 'camera:src' || n === 'microphone:src')
    .sort();
}

/** The daemon's CPU time so far, in clock ticks (user + system). */
function daemonCpuTicks() {
  const stat = readFileSync(`/proc/${device.child.pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(fields[11]) + Number(fields[12]);
}

test('idle: a moving preview, a moving meter, the tone refused with its reason, device choices as `cloakroom devices` lists them, device info, the log download; nothing runs once the page is closed', { timeout: 150000 }, step('idle', async (t) => {
  // The daemon at rest first: threads and CPU before anyone opened the page.
  await sleep(3000);
  assert.deepEqual(checkThreads(), [], 'no check runs before anyone opened the page');
  const cpu0 = daemonCpuTicks();
  await sleep(10000);
  const cpuBefore = daemonCpuTicks() - cpu0;

  const { ctx, page } = await pairedAdminPage();
  const shot = await assertPreviewMoves(page, 'idle', t);
  assert.deepEqual([shot.width, shot.height], [320, 240], 'the test camera at 320 px wide');
  await assertMeterMoves(page, 'idle', t);
  assert.deepEqual(checkThreads(), ['camera:src', 'microphone:src'], 'the checks run while the page is open');

  // The speaker is "none": the tone is refused with that reason.
  assert.equal(await page.isEnabled('#tone'), true, 'the tone button applies while idle');
  await page.click('#tone');
  await page.waitForFunction(() => document.getElementById('tone-result').textContent !== '');
  assert.equal(await page.textContent('#tone-result'), 'No test tone: no speaker: the speaker is set to "none"');

  // Device choices: exactly what `cloakroom devices` found, with auto/test/none.
  const cli = spawnSync(CLI, ['devices', '--json'], { encoding: 'utf8' });
  assert.equal(cli.status, 0, cli.stderr);
  const found = JSON.parse(cli.stdout);
  const options = (name) => page.evaluate((n) => [...document.querySelectorAll(`#settings-form select[name=${n}] option`)].map((o) => o.value), name);
  assert.deepEqual(await options('camera'), ['auto', ...found.cameras.map((c) => c.path), 'test']);
  assert.deepEqual(await options('microphone'), ['auto', ...found.microphones.map((m) => m.id), 'test']);
  assert.deepEqual(await options('speaker'), ['auto', ...found.speakers.map((m) => m.id), 'none']);
  assert.deepEqual(await page.evaluate(() => ['camera', 'microphone', 'speaker'].map((n) => document.querySelector(`#settings-form select[name=${n}]`).value)), ['test', 'test', 'none'], 'the configured devices are chosen');
  t.diagnostic(`cloakroom devices: ${found.cameras.length} camera(s), ${found.microphones.length} microphone(s), ${found.speakers.length} speaker(s)`);
  // Modes: suggestions for the chosen camera (the test picture: the usual sizes), the frame rates at the chosen size.
  const listed = (id) => page.evaluate((i) => [...document.querySelectorAll(`#${i} option`)].map((o) => o.value), id);
  assert.deepEqual(await listed('resolution-list'), ['320x240', '640x360', '640x480', '1280x720', '1920x1080']);
  assert.deepEqual(await listed('framerate-list'), ['10', '15', '20', '25', '30']);
  if (found.cameras.length > 0) {
    const cam = found.cameras[0];
    await page.selectOption('#settings-form select[name=camera]', cam.path);
    const sizes = new Set(cam.formats.flatMap((f) => f.resolutions.map((r) => `${r.width}x${r.height}`)));
    assert.deepEqual(new Set(await listed('resolution-list')), sizes, 'the camera\'s own sizes');
    await page.selectOption('#settings-form select[name=camera]', 'test');
  }

  // Version and uptime; addresses as the kernel lists them.
  await page.waitForFunction(() => document.getElementById('version').textContent !== '—');
  assert.match(await page.textContent('#version'), /^\d+\.\d+\.\d+/);
  assert.match(await page.textContent('#uptime'), /^software \d+ s, device \d+/);
  const addresses = await page.evaluate(() => [...document.querySelectorAll('#addresses li')].map((li) => li.textContent));
  t.diagnostic(`addresses: ${addresses.join(', ')}`);
  assert.ok(addresses.length > 0);

  // The log download: the page's lines, as a file.
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('#log-download')]);
  assert.equal(download.suggestedFilename(), 'cloakroom-log.txt');
  const text = readFileSync(await download.path(), 'utf8');
  assert.match(text, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z info a browser at 127\.0\.0\.1 paired as admin$/m);

  await assertAccessible(page, 'the admin page with the device checks (idle)', t);
  await page.screenshot({ path: join(SHOTS, 'device-checks-idle.png'), fullPage: true });

  // Closed: within the checks' 5-s stop and the daemon's 2-s tick, nothing of them is left.
  await ctx.close();
  const closed = Date.now();
  while (checkThreads().length > 0 && Date.now() < closed + 15000) await sleep(250);
  t.diagnostic(`the checks' pipelines stopped ${((Date.now() - closed) / 1000).toFixed(1)} s after the page was closed`);
  assert.deepEqual(checkThreads(), [], 'the checks\' pipelines stop once nobody looks');
  const cpu1 = daemonCpuTicks();
  await sleep(10000);
  const cpuAfter = daemonCpuTicks() - cpu1;
  t.diagnostic(`daemon CPU over 10 s: ${cpuBefore} ticks before the page was opened, ${cpuAfter} after it was closed`);
  assert.ok(cpuAfter <= cpuBefore + 10, `no more CPU than before the page was opened (${cpuBefore} → ${cpuAfter} ticks in 10 s)`);
}));

test('in a meeting: the preview is the room\'s own camera, the meter reads the meeting\'s microphone, participants with their encryption', { timeout: 180000 }, step('meeting', async (t) => {
  const { ctx, page } = await pairedAdminPage();
  await page.fill('#link', `janus+ws://${new URL(janus.wsUrl).host}/?room=${ROOM}#e2ee=${keyB64}`);
  await page.click('#join-form button');
  await waitText(page, 'state', 'in meeting', 40000);
  const B = await openParticipant(browser, { pageUrl: pages.url, wsUrl: janus.wsUrl, room: ROOM, keyHex, publish: true, subscribe: true, display: 'Visitor B' });
  participants.add(B);
  await page.waitForFunction(() => document.getElementById('participants').textContent.includes('Visitor B'), null, { timeout: 30000 });
  assert.equal(await page.evaluate(() => [...document.querySelectorAll('#participants li')].map((li) => li.textContent).find((x) => x.startsWith('Visitor B'))), 'Visitor B: encrypted');

  // The room's camera (sent at 320x240, 4:3), not the room screen's 16:9 grid where Visitor B is.
  await page.waitForFunction(() => document.getElementById('tone').disabled, null, { timeout: 10000 });
  const shot = await assertPreviewMoves(page, 'in a meeting', t);
  assert.deepEqual([shot.width, shot.height], [320, 240], 'the room camera\'s shape, not the 16:9 screen');
  await assertMeterMoves(page, 'in a meeting', t);
  await assertAccessible(page, 'the admin page with the device checks (in a meeting)', t);
  await page.screenshot({ path: join(SHOTS, 'device-checks-meeting.png'), fullPage: true });

  await B.close();
  participants.delete(B);
  await page.click('#leave');
  await waitText(page, 'state', 'idle', 20000);
  await page.waitForFunction(() => !document.getElementById('tone').disabled, null, { timeout: 10000 });
  await ctx.close();
}));

test('restart from the page: the daemon exits with 75 (systemd restarts it), and the open page comes back by itself', { timeout: 120000 }, step('restart', async (t) => {
  const { ctx, page } = await pairedAdminPage();
  page.on('dialog', (d) => d.accept());
  await page.click('#restart');
  await page.waitForFunction(() => document.getElementById('restart-result').textContent.startsWith('Restarting'));
  const exit = await Promise.race([device.exited, sleep(20000).then(() => null)]);
  assert.deepEqual(exit, { code: RESTART_EXIT_CODE, signal: null }, 'the daemon left with the restart code');
  assert.ok(device.stderr.some((l) => l.includes('restarting (asked for on the admin page)')), 'and said why');
  // What systemd would do: start it again. The page reloads itself into the admin page (its session was kept).
  device = await startDevice();
  await page.waitForFunction(() => document.getElementById('restart-result') && document.getElementById('restart-result').textContent === '' && !document.getElementById('admin').hidden, null, { timeout: 40000 });
  await page.waitForFunction(() => document.getElementById('uptime').textContent.startsWith('software'), null, { timeout: 10000 });
  t.diagnostic(`after the restart: ${await page.textContent('#uptime')}`);
  await ctx.close();
}));
