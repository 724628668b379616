// Join by holding a meeting link's QR code up to the room's camera (issue
// 17, part 2), with the real daemon (`cloakroomd --config`) whose camera is
// a still picture (`camera = "image:PATH"`: GStreamer's imagefreeze plays
// a PNG as a live camera) and a real Janus room (Debian's janus in a
// network namespace: the test needs root), a browser participant with the
// key checking what the room publishes.
//
// The pictures are made at test time by the media crate's `qr_png` example
// (`cargo build -p cloakroom-media --example qr_png`; the text goes in on
// stdin). What the room does is read from its status lines on stdout
// (`qr counting|refused|cancelled|ignored|join|banner ...`; `qr banner` is
// the very text the room screen's banner shows).
//
// Covered: a code of random text is ignored (no banner, no join), and the
// admin page's camera preview pauses the scanner until it stops; a code of
// a link without a key is refused on the screen while `require_key` is on
// (the default); a keyed link counts down 5, 4, 3, 2, 1 on the screen and
// joins no sooner than ~5 s later, and a browser with the key decodes the
// room; the admin page's "Stop a join by QR code" button (`POST
// /api/qr/cancel`) stops a countdown, the held-up code does not start
// another, and with nothing counting down the page says so (409).
//
// Binaries: CLOAKROOMD_BIN or target/debug/cloakroomd; QR_PNG_BIN or
// target/debug/examples/qr_png.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { keepFailureLogs } from './lib/artifacts.mjs';
import { startJanus, sleep } from './lib/janus.mjs';
import { launchBrowser, openParticipant, startPageServer } from './lib/browser.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));
const REPO = join(HERE, '..', '..');
const BIN = process.env.CLOAKROOMD_BIN || join(REPO, 'target', 'debug', 'cloakroomd');
const QR_PNG = process.env.QR_PNG_BIN || join(REPO, 'target', 'debug', 'examples', 'qr_png');
const ROOM = 5170;
const keyBytes = randomBytes(32);
const keyHex = keyBytes.toString('hex');
const keyB64 = keyBytes.toString('base64url');

let janus, pages, browser, dir;
const daemons = new Set();
const participants = new Set();

const janusHost = () => new URL(janus.wsUrl).host;

/** A PNG of a QR code of `text` (a phone showing it to the camera), made now. */
function codePicture(name, text) {
  const path = join(dir, name);
  const r = spawnSync(QR_PNG, [path], { input: `${text}\n` });
  assert.equal(r.status, 0, `qr_png: ${r.stderr}`);
  return path;
}

/** `cloakroomd --config` whose camera is the still picture `picture`; resolves once its page is up. */
async function startRoom(name, picture) {
  const state = join(dir, `${name}-state`);
  const config = join(dir, `${name}.toml`);
  writeFileSync(config, [
    '[room]', 'name = "Aquarium"',
    '[devices]', `camera = "image:${picture}"`, 'microphone = "test"', 'speaker = "none"',
    '[video]', 'resolution = "320x240"', 'framerate = 15',
    '[web]', 'bind = "127.0.0.1"', 'https_port = 0', 'http_port = 0',
    '[links]', `plain_ws_hosts = ["${new URL(janus.wsUrl).hostname}"]`,
    '[paths]', `state_dir = "${state}"`, '',
  ].join('\n'));
  const child = spawn(BIN, ['--config', config, '--print-pairing'], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, RUST_LOG: 'info,webrtc=warn,rtc=warn' },
  });
  const d = { name, child, stderr: [], info: {}, qr: [], exit: null };
  let buf = '';
  child.stdout.on('data', (chunk) => {
    buf += chunk;
    const lines = buf.split('\n');
    buf = lines.pop();
    for (const line of lines) {
      const i = line.indexOf(' ');
      if (i > 0) d.info[line.slice(0, i)] = line.slice(i + 1);
      if (line.startsWith('qr ')) d.qr.push({ at: Date.now(), line: line.slice(3) });
    }
  });
  let ebuf = '';
  child.stderr.on('data', (chunk) => { ebuf += chunk; const l = ebuf.split('\n'); ebuf = l.pop(); d.stderr.push(...l); });
  d.exited = new Promise((resolve) => child.on('exit', (code, signal) => { d.exit = { code, signal }; resolve(d.exit); }));
  d.stop = async () => {
    if (!d.exit) child.kill('SIGTERM');
    const r = await Promise.race([d.exited, sleep(15000).then(() => null)]);
    if (!r) { child.kill('SIGKILL'); await d.exited; }
    daemons.delete(d);
  };
  /** The first `qr` status line starting with `prefix` (after index `from`), waiting up to `ms`. */
  d.waitQr = async (prefix, ms, from = 0) => {
    const deadline = Date.now() + ms;
    while (Date.now() < deadline) {
      const hit = d.qr.slice(from).find((q) => q.line.startsWith(prefix));
      if (hit) return hit;
      if (d.exit) break;
      await sleep(100);
    }
    throw new Error(`${name}: no "qr ${prefix}" line within ${ms} ms; qr lines: ${JSON.stringify(d.qr.map((q) => q.line))}\n${d.stderr.slice(-30).join('\n')}`);
  };
  daemons.add(d);
  const deadline = Date.now() + 30000;
  while (!(d.info.url && d.info.code)) {
    if (d.exit) throw new Error(`cloakroomd exited ${JSON.stringify(d.exit)}\n${d.stderr.join('\n')}`);
    if (Date.now() > deadline) throw new Error(`cloakroomd did not print its page within 30 s\n${d.stderr.join('\n')}`);
    await sleep(100);
  }
  return d;
}

/** An HTTPS request to the room's page (its certificate is its own). */
function call(d, method, path, { body, headers = {} } = {}) {
  const url = new URL(path, d.info.url);
  return new Promise((resolve, reject) => {
    const req = request(url, { method, rejectUnauthorized: false, headers: { 'content-type': 'application/json', ...headers } }, (res) => {
      let text = '';
      res.on('data', (c) => { text += c; });
      res.on('end', () => {
        let json = null;
        try { json = text ? JSON.parse(text) : null; } catch { /* not JSON (a JPEG) */ }
        resolve({ status: res.statusCode, headers: res.headers, json });
      });
    });
    req.on('error', reject);
    req.end(body === undefined ? undefined : JSON.stringify(body));
  });
}

/** Pairs with the code the room shows: the session cookie and CSRF token. */
async function pair(d) {
  const r = await call(d, 'POST', '/api/pair', { body: { code: d.info.code } });
  assert.equal(r.status, 200, JSON.stringify(r.json));
  const cookie = String(r.headers['set-cookie']).split(';')[0];
  return { cookie, csrf: r.json.csrf };
}

function step(name, fn) {
  return async (t) => {
    try {
      await fn(t);
    } catch (e) {
      const extra = {};
      for (const d of daemons) extra[`daemon-${d.name}`] = d.stderr.join('\n');
      await keepFailureLogs(e, { prefix: 'qr-join-', name, janus, participants, extra });
      throw e;
    } finally {
      for (const d of [...daemons]) await d.stop();
    }
  };
}

before(async () => {
  assert.ok(existsSync(BIN), `cloakroomd not found at ${BIN}: run \`cargo build -p cloakroomd\` or set CLOAKROOMD_BIN`);
  assert.ok(existsSync(QR_PNG), `qr_png not found at ${QR_PNG}: run \`cargo build -p cloakroom-media --example qr_png\``);
  dir = mkdtempSync(join(tmpdir(), 'cloakroom-qr-join-e2e-'));
  janus = await startJanus({ room: ROOM });
  pages = await startPageServer();
  browser = await launchBrowser();
});

after(async () => {
  for (const p of participants) await p.close();
  for (const d of [...daemons]) await d.stop();
  await browser?.close();
  await pages?.close();
  await janus?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test('a QR code of random text is ignored', step('random text', async (t) => {
  const d = await startRoom('random', codePicture('random.png', 'Lunch menu: soup of the day, ask at the counter'));
  await d.waitQr('ignored', 30000);
  // Seen three times a second for 8 s more: nothing shown, nothing joined.
  await sleep(8000);
  const said = d.qr.map((q) => q.line);
  assert.deepEqual(said, ['ignored'], `only one "ignored", nothing on the screen: ${JSON.stringify(said)}`);
  const started = () => d.stderr.filter((l) => l.includes('QR scanning: hold a meeting link')).length;
  assert.equal(started(), 1, 'the scanner ran');
  t.diagnostic(`qr lines: ${JSON.stringify(said)}`);
  // The admin page's camera preview takes the camera (a V4L2 camera opens once): the scanner lets go
  // before the preview starts, and comes back once the preview has stopped.
  const session = await pair(d);
  const preview = await call(d, 'GET', '/api/preview.jpg', { headers: { cookie: session.cookie } });
  assert.ok(d.stderr.some((l) => l.includes('QR scanning paused')), `paused for the preview (preview answered ${preview.status})`);
  const deadline = Date.now() + 20000;
  while (started() < 2 && Date.now() < deadline) await sleep(200);
  assert.equal(started(), 2, 'scanning again after the preview');
}));

test('a QR code of a link without a key is refused on the screen (require_key on)', step('no key', async (t) => {
  const d = await startRoom('keyless', codePicture('keyless.png', `janus+ws://${janusHost()}/?room=${ROOM}`));
  const refused = await d.waitQr('refused ', 30000);
  assert.match(refused.line, /refuses meetings without one/);
  const banner = await d.waitQr('banner Not joining from this QR code:', 5000);
  assert.match(banner.line, /refuses meetings without one/);
  await sleep(7000);
  const said = d.qr.map((q) => q.line);
  assert.ok(!said.some((l) => l.startsWith('counting') || l.startsWith('join')), JSON.stringify(said));
  t.diagnostic(`the room screen's banner: ${banner.line.slice('banner '.length)}`);
}));

test('the page cancels the countdown and the held-up code starts no other', step('cancel', async (t) => {
  const d = await startRoom('cancel', codePicture('cancel.png', `janus+ws://${janusHost()}/?room=${ROOM}#e2ee=${keyB64}`));
  const session = await pair(d);
  const headers = { cookie: session.cookie, 'x-csrf-token': session.csrf };
  // Nothing to cancel yet... unless the camera was quicker than the pairing.
  // The admin page with this session, its "Stop a join by QR code" button pressed during the countdown.
  const ctx = await browser.newContext({ ignoreHTTPSErrors: true });
  const [name, value] = session.cookie.split('=');
  await ctx.addCookies([{ name, value, url: d.info.url, secure: true, httpOnly: true, sameSite: 'Strict' }]);
  const page = await ctx.newPage();
  await page.goto(d.info.url);
  await page.locator('#admin').waitFor({ state: 'visible', timeout: 20000 });
  await d.waitQr('counting ', 30000);
  await page.click('#qr-cancel');
  await d.waitQr('cancelled Page', 3000);
  assert.equal(await page.textContent('#join-error'), '', 'no error on the page');
  await d.waitQr('banner Join cancelled', 3000);
  await sleep(8000);
  const said = d.qr.map((q) => q.line);
  assert.ok(!said.some((l) => l.startsWith('join')), `no join after the cancel: ${JSON.stringify(said)}`);
  assert.equal(said.filter((l) => l.startsWith('counting')).length, 1, JSON.stringify(said));
  const again = await call(d, 'POST', '/api/qr/cancel', { body: {}, headers });
  assert.equal(again.status, 409, JSON.stringify(again.json));
  assert.equal(again.json.error.code, 'no_countdown');
  // The button again: the page says why nothing happened.
  await page.click('#qr-cancel');
  await page.waitForFunction(() => document.getElementById('join-error').textContent !== '', null, { timeout: 5000 });
  assert.match(await page.textContent('#join-error'), /not counting down/);
  await ctx.close();
  const anonymous = await call(d, 'POST', '/api/qr/cancel', { body: {} });
  assert.equal(anonymous.status, 401, 'no session, no cancel');
  t.diagnostic(`qr lines: ${JSON.stringify(said)}`);
}));

test('a keyed link joins after the countdown and a browser with the key decodes the room', step('keyed', async (t) => {
  const d = await startRoom('keyed', codePicture('keyed.png', `janus+ws://${janusHost()}/?room=${ROOM}#e2ee=${keyB64}`));
  const counting = await d.waitQr('counting ', 30000);
  assert.ok(!counting.line.includes(keyB64), 'the key is never printed');
  assert.match(counting.line, /#\[redacted\]$/);
  const joined = await d.waitQr('join ', 15000);
  const waited = joined.at - counting.at;
  assert.ok(waited >= 4500, `joined ${waited} ms after the countdown started (want ≥ 5 s less line latency)`);
  const banners = d.qr.filter((q) => q.line.startsWith('banner ')).map((q) => q.line.slice('banner '.length));
  const seconds = banners.map((b) => /^Joining .* in (\d) s \//.exec(b)?.[1]).filter(Boolean).map(Number);
  assert.deepEqual(seconds, [5, 4, 3, 2, 1], `the countdown on the room screen: ${JSON.stringify(banners)}`);
  assert.ok(banners.every((b) => !b.includes(keyB64)));
  t.diagnostic(`countdown banners: ${JSON.stringify(banners)}; joined after ${waited} ms`);

  const B = await openParticipant(browser, { pageUrl: pages.url, wsUrl: janus.wsUrl, room: ROOM, keyHex, publish: false, subscribe: true, display: 'B-key' });
  B.display = 'B-key';
  participants.add(B);
  await B.waitFor((s) => s.video.framesDecoded > 0, 40000, 'the first decoded frame of the room');
  const s0 = await B.stats();
  await sleep(5000);
  const s1 = await B.stats();
  const decoded = s1.video.framesDecoded - s0.video.framesDecoded;
  const detail = JSON.stringify({ video: s1.video, worker: s1.worker });
  assert.ok(decoded >= 30, `browser decoded ${decoded} frames of the room in 5 s (want ≥ 30): ${detail}`);
  assert.equal(s1.worker.decryptFailures.video, 0, detail);
  assert.ok(s1.worker.decrypted.video >= 30, detail);
  assert.deepEqual([s1.video.width, s1.video.height], [320, 240], detail);
  t.diagnostic(`browser with the key decoded ${decoded} frames of the room in 5 s`);
  participants.delete(B);
  await B.close();
}));
