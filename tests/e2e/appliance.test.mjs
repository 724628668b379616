// The appliance in real Chromium: `cloakroomd --config` (the real daemon,
// test camera and tone, no root needed by the daemon itself) with its HTTPS
// page, joined into a real Janus room (Debian's janus in a network
// namespace, so the test needs root) where a browser participant with the
// key checks that the room's video really arrives and decrypts.
//
// Covered: pairing (wrong code refused, right code gives the admin page,
// a pause for the guessing address after 5 wrong tries), session cookie flags, a POST without
// CSRF token refused, every /api route refused without a session, settings
// saved and kept across a daemon restart, join from the admin page and from
// the phone's scan link into Janus, mute, leave, a link without a key
// refused, an unreachable server shown as an error with retries; axe-core's
// WCAG 2.1 A/AA rules on every page and state (0 violations), pairing and
// reaching the buttons by keyboard alone, and a 360 px phone (no sideways
// scrolling, text at least 14 px).
//
// The daemon binary: CLOAKROOMD_BIN, or target/debug/cloakroomd (`cargo
// build -p cloakroomd`). Screenshots go to CLOAKROOM_SHOTS (default
// /tmp/cloakroom-shots), outside git.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
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
const ROOM = 5150;
const keyBytes = randomBytes(32);
const keyHex = keyBytes.toString('hex');
const keyB64 = keyBytes.toString('base64url');
// axe-core, evaluated into the page through the DevTools protocol: the page's
// CSP (default-src 'self') would block an injected script tag.
const AXE_SOURCE = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');
// A small phone: 360 CSS px wide at twice the pixels.
const PHONE_360 = { viewport: { width: 360, height: 740 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true };

let janus, pages, browser, dir, device;
// Pairing codes are single use: once one has paired, wait for the room to show the next.
const usedCodes = new Set();
// Scan links too.
const usedJoinPaths = new Set();
const participants = new Set();

/** Starts `cloakroomd --config` on the test's state dir; resolves once the page is up. */
async function startDevice() {
  const config = join(dir, 'cloakroom.toml');
  writeFileSync(config, [
    '[room]', 'name = "Aquarium"',
    '[devices]', 'camera = "test"', 'microphone = "test"', 'speaker = "none"',
    '[video]', 'resolution = "320x240"', 'framerate = 15',
    '[web]', 'bind = "127.0.0.1"', 'https_port = 0', 'http_port = 0',
    // Janus speaks plain WebSocket from its namespace: allowed for that one host.
    '[links]', `plain_ws_hosts = ["${new URL(janus.wsUrl).hostname}"]`,
    '[paths]', `state_dir = "${join(dir, 'state')}"`, '',
  ].join('\n'));
  const child = spawn(BIN, ['--config', config, '--print-pairing'], {
    stdio: ['ignore', 'pipe', 'pipe'],
    // Requests and answers at debug: a page that never settles shows which request went unanswered.
    env: { ...process.env, RUST_LOG: 'info,webrtc=warn,rtc=warn,cloakroom_appliance::web=debug' },
  });
  const d = { child, stderr: [], info: {}, exit: null };
  let buf = '';
  child.stdout.on('data', (chunk) => {
    buf += chunk;
    const lines = buf.split('\n');
    buf = lines.pop();
    // `code` and `join-path` lines come again whenever the screen shows new ones.
    for (const line of lines) {
      const i = line.indexOf(' ');
      if (i > 0) d.info[line.slice(0, i)] = line.slice(i + 1);
    }
  });
  let ebuf = '';
  child.stderr.on('data', (chunk) => { ebuf += chunk; const l = ebuf.split('\n'); ebuf = l.pop(); d.stderr.push(...l); });
  d.exited = new Promise((resolve) => child.on('exit', (code, signal) => { d.exit = { code, signal }; resolve(d.exit); }));
  const deadline = Date.now() + 30000;
  while (!(d.info.url && d.info.code && d.info['join-path'])) {
    if (d.exit) throw new Error(`cloakroomd exited ${JSON.stringify(d.exit)}\n${d.stderr.join('\n')}`);
    if (Date.now() > deadline) throw new Error(`cloakroomd did not print its page within 30 s\n${d.stderr.join('\n')}`);
    await sleep(100);
  }
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
  mkdirSync(SHOTS, { recursive: true });
  dir = mkdtempSync(join(tmpdir(), 'cloakroom-appliance-e2e-'));
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
      await keepFailureLogs(e, { prefix: 'appliance-', name, janus, participants, extra: { daemon: device?.stderr.join('\n') ?? '' } });
      throw e;
    }
  };
}

const janusLink = () => `janus+ws://${new URL(janus.wsUrl).host}/?room=${ROOM}#e2ee=${keyB64}`;
// The device certificate is self-signed; people compare its fingerprint, the test trusts it.
const newContext = (opts = {}) => browser.newContext({ ignoreHTTPSErrors: true, ...opts });
const waitText = (page, id, text, timeout = 30000) =>
  page.waitForFunction(([i, t]) => document.getElementById(i).textContent === t, [id, text], { timeout });

/** A browser participant with the key decodes the room's video (≥ 30 frames in 5 s at 15 fps, moving). */
async function assertBrowserSeesRoom(t) {
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
  assert.deepEqual([s1.video.width, s1.video.height], [320, 240], detail);
  const m = await B.motion(5, 300);
  assert.ok(Math.max(...m.diffs) > 1.0, `no motion in the room's picture: ${JSON.stringify(m)}`);
  t.diagnostic(`browser with the key decoded ${decoded} frames of the room in 5 s; motion ${m.diffs.map((x) => x.toFixed(1)).join(',')}`);
  participants.delete(B);
  await B.close();
}

/** The code the room shows now that has not been used yet (a new one comes within a few seconds of a pairing). */
async function freshCode() {
  const deadline = Date.now() + 15000;
  while (usedCodes.has(device.info.code) && Date.now() < deadline) await sleep(200);
  assert.ok(!usedCodes.has(device.info.code), 'the room shows a new pairing code after one was used');
  return device.info.code;
}

/**
 * Opens the device's page and waits for it to settle on the pairing form or
 * the admin page. Once, in a CI run, the first page load showed neither for
 * 30 s (its /api/session request never answered; not reproduced here): the
 * page is then loaded once more, and that is said in the test's output.
 */
async function openDevicePage(page, t) {
  const settled = () => page.waitForFunction(() => !document.getElementById('pair').hidden || !document.getElementById('admin').hidden, null, { timeout: 15000 });
  try {
    await page.goto(device.info.url);
  } catch (e) {
    // Seen once right after a daemon restart; say what it was and go once more.
    t?.diagnostic(`loading the device page failed (${e.message.split('\n')[0]}); trying once more`);
    await sleep(1000);
    await page.goto(device.info.url);
  }
  try {
    await settled();
  } catch {
    t?.diagnostic('the device page showed neither pairing nor admin within 15 s; reloading once');
    await page.reload();
    await settled();
  }
}

/**
 * Waits for the admin page after pairing. Seen twice in CI-like runs under
 * load: the page was still hidden after 30 s. When it is not shown in 20 s,
 * this says so with the daemon's last requests and answers (debug log), then
 * reloads once: with the session cookie set, the reload shows the admin page.
 */
async function adminShown(page, t) {
  try {
    await page.locator('#admin').waitFor({ state: 'visible', timeout: 20000 });
  } catch (e) {
    const http = (device?.stderr ?? []).join('\n').split('\n').filter((l) => l.includes('http ')).slice(-8);
    t?.diagnostic(`the admin page was not shown 20 s after pairing (${e.message.split('\n')[0]}); last requests: ${http.join(' | ')}; reloading once`);
    await page.reload();
    await page.locator('#admin').waitFor({ state: 'visible' });
  }
}

/** A new browser context paired as admin with the code the room shows now; on the admin page. */
async function pairedAdminPage(t, viewport) {
  const ctx = await newContext(viewport ? { viewport } : {});
  const page = await ctx.newPage();
  await openDevicePage(page, t);
  await page.locator('#pair').waitFor({ state: 'visible' });
  const code = await freshCode();
  await page.fill('#code', code);
  await page.click('#pair-form button');
  await adminShown(page, t);
  usedCodes.add(code);
  return { ctx, page };
}

async function apiStatus(page) {
  return page.evaluate(async () => (await fetch('/api/status')).json());
}

/**
 * axe-core's WCAG 2.0/2.1 A and AA rules on the page as it is now: 0
 * violations, or a failure naming each one (rule, impact, elements, help).
 */
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

/** No sideways scrolling at the page's width, and no visible text under 14 CSS px. */
async function assertReadableAt(page, width, what) {
  const m = await page.evaluate(() => {
    const small = [];
    for (const el of document.body.querySelectorAll('*')) {
      const hasText = [...el.childNodes].some((n) => n.nodeType === Node.TEXT_NODE && n.textContent.trim() !== '');
      if (!hasText || el.getClientRects().length === 0) continue;
      const px = parseFloat(getComputedStyle(el).fontSize);
      if (px < 14) small.push(`${el.tagName.toLowerCase()}${el.id ? '#' + el.id : ''}${el.className ? '.' + el.className : ''} ${px}px`);
    }
    return { scrollWidth: document.scrollingElement.scrollWidth, innerWidth, small };
  });
  assert.equal(m.innerWidth, width, `${what}: the layout is ${m.innerWidth} px wide (zoomed out?)`);
  assert.ok(m.scrollWidth <= m.innerWidth, `${what} scrolls sideways: ${m.scrollWidth} px of content in ${m.innerWidth} px`);
  assert.deepEqual(m.small, [], `${what}: text under 14 CSS px`);
}

/** Presses Tab until `selector` has the focus (at most `max` times); the ids/texts passed on the way. */
async function tabTo(page, selector, max = 60) {
  const path = [];
  for (let i = 0; i < max; i++) {
    await page.keyboard.press('Tab');
    const at = await page.evaluate((sel) => {
      const a = document.activeElement;
      return { hit: a?.matches(sel) ?? false, name: a ? `${a.tagName.toLowerCase()}${a.id ? '#' + a.id : ''}${a.name ? `[${a.name}]` : ''}` : 'none' };
    }, selector);
    path.push(at.name);
    if (at.hit) return path;
  }
  assert.fail(`${selector} not reached in ${max} Tabs: ${path.join(' → ')}`);
}

/** The focused element draws a visible outline (at least 2 px, not `none`). */
async function assertFocusVisible(page, what) {
  const o = await page.evaluate(() => {
    const s = getComputedStyle(document.activeElement);
    return { style: s.outlineStyle, width: parseFloat(s.outlineWidth) };
  });
  assert.ok(o.style !== 'none' && o.width >= 2, `${what}: no visible focus outline (${JSON.stringify(o)})`);
}

/** The scan link the room shows now that has not been used yet. */
async function freshJoinPath() {
  const deadline = Date.now() + 15000;
  while (usedJoinPaths.has(device.info['join-path']) && Date.now() < deadline) await sleep(200);
  assert.ok(!usedJoinPaths.has(device.info['join-path']), 'the room shows a new scan link after one was used');
  return device.info['join-path'];
}

test('pairing, admin page, CSRF, settings kept across a restart', { timeout: 150000 }, step('admin', async (t) => {
  const ctx = await newContext({ viewport: { width: 1100, height: 1400 } });
  const page = await ctx.newPage();
  await openDevicePage(page, t);
  await page.locator('#pair').waitFor({ state: 'visible' });
  await assertAccessible(page, 'the pairing form', t);

  // Wrong code: refused with a message, still on the pairing form.
  const code = device.info.code;
  const wrong = String((Number(code) + 1) % 1000000).padStart(6, '0');
  await page.fill('#code', wrong);
  await page.click('#pair-form button');
  await page.waitForFunction(() => document.getElementById('pair-error').textContent.includes('wrong code'));
  assert.equal(await page.locator('#admin').isVisible(), false);

  // Right code: the admin page.
  await page.fill('#code', code);
  await page.click('#pair-form button');
  await adminShown(page, t);
  usedCodes.add(code);
  const session = (await ctx.cookies()).find((c) => c.name === '__Host-cloakroom');
  assert.ok(session, 'session cookie set');
  assert.equal(session.httpOnly, true);
  assert.equal(session.secure, true);
  assert.equal(session.sameSite, 'Strict');
  await waitText(page, 'state', 'idle');
  assert.equal(await page.textContent('#fingerprint'), device.info.fingerprint);
  // The device report, readable, and the settings' suggestions from it.
  await page.waitForFunction(() => document.getElementById('devices').textContent.includes('Encoders: '));
  assert.match(await page.textContent('#devices'), /Encoders: .*vp8 \(vp8enc\)/);
  assert.deepEqual(await page.evaluate(() => [...document.querySelectorAll('#settings-form select[name=camera] option')].map((o) => o.value).filter((v) => v === 'auto' || v === 'test')), ['auto', 'test']);
  await page.waitForFunction(() => document.querySelector('#settings-form input[name=room_name]').value !== '');
  await assertAccessible(page, 'the admin page, idle', t);

  // The code was single use: the room screen (and --print-pairing) shows a new one.
  const deadline = Date.now() + 10000;
  while (device.info.code === code && Date.now() < deadline) await sleep(200);
  assert.notEqual(device.info.code, code, 'a new pairing code after the first was used');

  // A POST without the CSRF header is refused, even from the page's own origin with the cookie.
  const noCsrf = await page.evaluate(async () => {
    const r = await fetch('/api/mute', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"muted":true}' });
    return { status: r.status, body: await r.json() };
  });
  assert.equal(noCsrf.status, 403);
  assert.equal(noCsrf.body.error.code, 'csrf');

  // Settings: a bad value is refused with the field named, a good one is saved.
  await page.waitForFunction(() => document.querySelector('#settings-form input[name=room_name]').value === 'Aquarium');
  await page.fill('#settings-form input[name=resolution]', '9999x9999');
  await page.evaluate(() => document.querySelector('#settings-form input[name=resolution]').removeAttribute('pattern'));
  await page.click('#settings-form button');
  await page.waitForFunction(() => document.getElementById('settings-error').textContent.includes('resolution'));
  await page.fill('#settings-form input[name=resolution]', '320x240');
  await page.fill('#settings-form input[name=room_name]', 'Aquarium, 3rd floor');
  await page.click('#settings-form button');
  await page.waitForFunction(() => document.getElementById('settings-ok').textContent === 'Saved.');

  // Restart the daemon: the setting is still there, and the session too (kept in the state dir).
  await device.stop();
  device = await startDevice();
  await openDevicePage(page, t);
  await adminShown(page, t);
  await page.waitForFunction(() => document.querySelector('#settings-form input[name=room_name]').value === 'Aquarium, 3rd floor');
  await ctx.close();
}));

test('join from the admin page into Janus: a browser with the key sees the room; mute; leave', { timeout: 180000 }, step('admin-join', async (t) => {
  const { ctx, page } = await pairedAdminPage(t, { width: 1100, height: 1400 });

  // Bad links are refused with the reason, before anything starts.
  // (An https:// link is a Jitsi meeting now; a plain http:// one is refused.)
  await page.fill('#link', 'http://meet.example/room');
  await page.click('#join-form button');
  await page.waitForFunction(() => document.getElementById('join-error').textContent.includes('scheme'));
  await page.fill('#link', `janus+ws://${new URL(janus.wsUrl).host}/?room=${ROOM}`);
  await page.click('#join-form button');
  await page.waitForFunction(() => document.getElementById('join-error').textContent !== '' && !document.getElementById('join-error').textContent.includes('scheme'));
  t.diagnostic(`link without a key: ${await page.textContent('#join-error')}`);
  await waitText(page, 'state', 'idle');

  await page.fill('#link', janusLink());
  await page.click('#join-form button');
  await waitText(page, 'state', 'in meeting', 40000);
  const verification = await page.textContent('#verification');
  assert.match(verification, /^\d{3}( \d{3}){4}$/);
  assert.equal(await page.textContent('#encrypted'), 'encrypted');
  assert.ok(!(await page.content()).includes(keyB64.slice(0, 12)), 'the key is never on the page');
  await assertAccessible(page, 'the admin page in a meeting', t);
  await assertBrowserSeesRoom(t);

  // The page's numbers come from the real meeting.
  const st = await apiStatus(page);
  assert.ok(st.media.frames_sent > 0 && st.media.send_bitrate_kbps > 0, JSON.stringify(st.media));
  const metrics = await page.evaluate(async () => (await fetch('/metrics')).text());
  assert.match(metrics, /cloakroom_room_state\{state="in_meeting"\} 1/);

  await page.click('#mute');
  await page.waitForFunction(() => document.getElementById('mute').textContent === 'Unmute');
  assert.equal((await apiStatus(page)).muted, true);
  await page.screenshot({ path: join(SHOTS, 'admin.png'), fullPage: true });
  await page.click('#mute');
  await page.waitForFunction(() => document.getElementById('mute').textContent === 'Mute');
  await page.click('#leave');
  await waitText(page, 'state', 'idle', 20000);
  const logs = await page.evaluate(async () => (await fetch('/api/logs')).json());
  assert.ok(logs.some((l) => l.message.includes('left the meeting')), 'the log view shows the leave');
  assert.ok(!JSON.stringify(logs).includes(keyB64.slice(0, 12)), 'the key is not in the logs');
  await ctx.close();
}));

test('phone joins by the scan link into Janus, then leaves', { timeout: 180000 }, step('scan-join', async (t) => {
  const ctx = await newContext({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true });
  const page = await ctx.newPage();
  const joinPath = await freshJoinPath();
  usedJoinPaths.add(joinPath);
  await page.goto(new URL(joinPath, device.info.url).href);
  await page.locator('#guest').waitFor({ state: 'visible' });
  assert.equal(new URL(page.url()).hash, '', 'the single-use token is dropped from the address bar');
  await waitText(page, 'state', 'idle');
  await assertAccessible(page, 'the phone page, idle', t);
  await page.fill('#link', janusLink());
  await page.tap('#join-form button');
  await waitText(page, 'state', 'in meeting', 40000);
  await page.screenshot({ path: join(SHOTS, 'join-phone.png'), fullPage: true });
  await assertAccessible(page, 'the phone page in a meeting', t);
  await assertReadableAt(page, 390, 'the phone page in a meeting at 390 px');
  await assertBrowserSeesRoom(t);
  // The guest session cannot read settings.
  assert.equal(await page.evaluate(async () => (await fetch('/api/settings')).status), 403);
  await page.tap('#leave');
  // The guest session ends with the meeting it started (security review finding 5).
  await page.locator('#expired').waitFor({ state: 'visible', timeout: 20000 });
  assert.match(await page.textContent('#scan-error'), /session has ended/);
  await assertAccessible(page, 'the phone page, session ended', t);
  assert.equal(await page.evaluate(async () => (await fetch('/api/status')).status), 401);
  // The same scan link again: used.
  const again = await ctx.newPage();
  await again.goto(new URL(joinPath, device.info.url).href);
  await again.locator('#expired').waitFor({ state: 'visible' });
  await assertAccessible(again, 'the phone page, scan link used', t);
  await ctx.close();
}));

test('the command line: pair (fingerprint pinned), join with the link on stdin, status, mute, leave', { timeout: 120000 }, step('cli', async (t) => {
  assert.ok(existsSync(CLI), `cloakroom not found at ${CLI}: run \`cargo build -p cloakroom\` or set CLOAKROOM_BIN`);
  const env = { ...process.env, CLOAKROOM_SESSION: join(dir, 'cli-session.json') };
  const cli = (args, input) => {
    const r = spawnSync(CLI, args, { env, input, encoding: 'utf8', timeout: 20000 });
    return { code: r.status, out: r.stdout, err: r.stderr };
  };
  // A wrong fingerprint: refused before the code is sent.
  const bad = cli(['pair', device.info.code, '--device', device.info.url, '--fingerprint', '00'.repeat(32)]);
  assert.equal(bad.code, 1, JSON.stringify(bad));
  assert.match(bad.err, /fingerprint/);
  const wrong = cli(['status']);
  assert.equal(wrong.code, 1, 'no session yet');
  const code = await freshCode();
  const paired = cli(['pair', code, '--device', device.info.url, '--fingerprint', device.info.fingerprint.toLowerCase()]);
  assert.equal(paired.code, 0, JSON.stringify(paired));
  usedCodes.add(code);
  assert.match(paired.out, /paired with .* as admin/);
  const joined = cli(['join', '-'], `${janusLink()}\n`);
  assert.equal(joined.code, 0, JSON.stringify(joined));
  let status;
  const deadline = Date.now() + 40000;
  do {
    await sleep(500);
    status = cli(['status']);
  } while (!status.out.includes('state: in meeting') && Date.now() < deadline);
  assert.match(status.out, /state: in meeting/, status.out + status.err);
  assert.match(status.out, /encryption: end to end, key check \d{3} \d{3}/);
  assert.ok(!status.out.includes(keyB64.slice(0, 12)), 'the key is not printed');
  assert.equal(cli(['mute', 'on']).code, 0);
  assert.equal(JSON.parse(cli(['status', '--json']).out).muted, true);
  const again = cli(['join', '-'], `${janusLink()}\n`);
  assert.equal(again.code, 1, 'a second join while in a meeting is refused');
  t.diagnostic(`second join: ${again.err.trim()}`);
  assert.equal(cli(['leave']).code, 0);
  do { await sleep(500); status = cli(['status']); } while (!status.out.includes('state: idle') && Date.now() < deadline + 20000);
  assert.match(status.out, /state: idle/);
  assert.equal(cli(['mute', 'off']).code, 0);
}));

test('with "refuse links without a key" off, a keyless link joins unencrypted, and the page says so', { timeout: 120000 }, step('plain', async (t) => {
  const { ctx, page } = await pairedAdminPage(t, { width: 1100, height: 1400 });
  const plainLink = `janus+ws://${new URL(janus.wsUrl).host}/?room=${ROOM}`;
  const setRequireKey = async (on) => {
    await page.waitForFunction(() => document.querySelector('#settings-form input[name=room_name]').value !== '');
    await page.evaluate(() => { document.getElementById('settings-ok').textContent = ''; });
    await page.setChecked('#settings-form input[name=require_key]', on);
    await page.click('#settings-form button');
    await page.waitForFunction(() => document.getElementById('settings-ok').textContent === 'Saved.');
  };
  await setRequireKey(false);
  await page.fill('#link', plainLink);
  await page.click('#join-form button');
  await waitText(page, 'state', 'in meeting', 40000);
  await waitText(page, 'encrypted', 'NOT encrypted');
  await assertAccessible(page, 'the admin page in an unencrypted meeting', t);
  assert.equal(await page.textContent('#verification'), '—');
  // A browser without any transform decodes the room: nothing is encrypted.
  const plain = await openParticipant(browser, { pageUrl: pages.url, wsUrl: janus.wsUrl, room: ROOM, transform: false, publish: false, subscribe: true, display: 'plain' });
  plain.display = 'plain';
  participants.add(plain);
  const s = await plain.waitFor((x) => x.video.framesDecoded >= 30, 40000, '30 decoded frames of the unencrypted room');
  t.diagnostic(`plain browser decoded ${s.video.framesDecoded} frames of the room`);
  participants.delete(plain);
  await plain.close();
  await page.click('#leave');
  await waitText(page, 'state', 'idle', 20000);
  // Back on: the same link is refused again.
  await setRequireKey(true);
  await page.fill('#link', plainLink);
  await page.click('#join-form button');
  await page.waitForFunction(() => document.getElementById('join-error').textContent.includes('refuses meetings without one'));
  await ctx.close();
}));

test('an unreachable meeting server: reconnecting with retries, then leave', { timeout: 90000 }, step('server-gone', async (t) => {
  const { ctx, page } = await pairedAdminPage(t);
  // Port 9 on this machine's own address: nothing listens.
  await page.fill('#link', `janus+ws://127.0.0.1:9/?room=${ROOM}#e2ee=${keyB64}`);
  await page.click('#join-form button');
  await waitText(page, 'state', 'reconnecting', 40000);
  // Reconnecting is waiting for the next try (retry_in_ms set) or trying (empty): catch a wait.
  let st = await apiStatus(page);
  for (let i = 0; i < 40 && st.retry_in_ms === null; i++) { await sleep(250); st = await apiStatus(page); }
  assert.ok(st.state === 'reconnecting' && st.error && st.attempts >= 1 && st.retry_in_ms !== null, JSON.stringify(st));
  t.diagnostic(`shown: ${st.error} (attempt ${st.attempts}, retry in ${st.retry_in_ms} ms)`);
  await page.waitForFunction(() => document.getElementById('room-error').textContent !== '');
  await assertAccessible(page, 'the admin page showing an error', t);
  await page.click('#leave');
  await waitText(page, 'state', 'idle', 20000);
  // Idle by choice: the old failure is gone from the status and the page.
  assert.equal((await apiStatus(page)).error, null);
  await page.waitForFunction(() => document.getElementById('room-error').textContent === '');
  await ctx.close();
}));

test('keyboard only and a 360 px phone: pair with Tab, type, Enter; reach Join and the sessions\' buttons; no sideways scrolling, text ≥ 14 px', { timeout: 90000 }, step('keyboard-360', async (t) => {
  const ctx = await newContext(PHONE_360);
  const page = await ctx.newPage();
  await openDevicePage(page, t);
  await page.locator('#pair').waitFor({ state: 'visible' });
  await assertReadableAt(page, 360, 'the pairing form at 360 px');
  const code = await freshCode();
  await tabTo(page, '#code');
  await assertFocusVisible(page, 'the code field');
  await page.keyboard.type(code);
  await page.keyboard.press('Enter');
  await adminShown(page, t);
  usedCodes.add(code);
  await waitText(page, 'state', 'idle');
  // Earlier tests' browsers are in the list, each with an End button.
  await page.locator('#sessions button').first().waitFor({ state: 'visible' });
  await page.waitForFunction(() => document.querySelector('#settings-form input[name=room_name]').value !== '');
  const toJoin = await tabTo(page, '#join-form button');
  await assertFocusVisible(page, 'the Join button');
  const toEnd = await tabTo(page, '#sessions button');
  await assertFocusVisible(page, 'a session\'s End button');
  // The list is redrawn every 3 s; the focus stays on the same session's button.
  const focused = await page.evaluate(() => { document.getElementById('sessions').firstElementChild.dataset.old = '1'; return document.activeElement.getAttribute('aria-label'); });
  await page.waitForFunction(() => !document.querySelector('#sessions [data-old]'), null, { timeout: 10000 });
  assert.equal(await page.evaluate(() => document.activeElement.getAttribute('aria-label')), focused, 'focus kept across the list\'s refresh');
  t.diagnostic(`Tabs: ${toJoin.length} to Join, ${toEnd.length} more to the first End (${toJoin.concat(toEnd).join(' → ')})`);
  await assertReadableAt(page, 360, 'the admin page at 360 px');
  await page.screenshot({ path: join(SHOTS, 'admin-360.png'), fullPage: true });

  // The phone page from the scan link, at 360 px, by keyboard.
  const phone = await ctx.newPage();
  const joinPath = await freshJoinPath();
  usedJoinPaths.add(joinPath);
  await phone.goto(new URL(joinPath, device.info.url).href);
  await phone.locator('#guest').waitFor({ state: 'visible' });
  await waitText(phone, 'state', 'idle');
  await tabTo(phone, '#link');
  await tabTo(phone, '#join-form button', 3);
  await assertFocusVisible(phone, 'the phone page\'s Join button');
  await assertReadableAt(phone, 360, 'the phone page at 360 px');
  await phone.screenshot({ path: join(SHOTS, 'join-360.png'), fullPage: true });
  await ctx.close();
}));

test('five wrong codes pause pairing for this browser\'s address; every /api route refuses a browser without a session', { timeout: 60000 }, step('rate-limit', async () => {
  const ctx = await newContext();
  const page = await ctx.newPage();
  await page.goto(device.info.url);
  await page.locator('#pair').waitFor({ state: 'visible' });
  for (let i = 0; i < 5; i++) {
    await page.fill('#code', device.info.code === '000000' ? '000001' : '000000');
    await page.click('#pair-form button');
    await page.waitForFunction((n) => document.getElementById('pair-error').dataset.n !== String(n) && document.getElementById('pair-error').textContent !== '', i);
    await page.evaluate((n) => { document.getElementById('pair-error').dataset.n = String(n); }, i);
  }
  assert.match(await page.textContent('#pair-error'), /too many wrong tries from this device/);
  // Now even the right code is refused for a while.
  await page.fill('#code', device.info.code);
  await page.click('#pair-form button');
  await sleep(500);
  assert.equal(await page.locator('#admin').isVisible(), false);
  const statuses = await page.evaluate(async () => {
    const out = {};
    for (const [m, p] of [['GET', '/api/status'], ['GET', '/api/settings'], ['PUT', '/api/settings'], ['GET', '/api/devices'],
      ['GET', '/api/logs'], ['POST', '/api/join'], ['POST', '/api/leave'], ['POST', '/api/mute'], ['GET', '/api/session'],
      ['GET', '/api/join-token'], ['POST', '/api/logout']]) {
      const r = await fetch(p, { method: m, headers: { 'content-type': 'application/json' }, body: m === 'GET' ? undefined : '{}' });
      out[`${m} ${p}`] = r.status;
    }
    return out;
  });
  for (const [route, status] of Object.entries(statuses)) assert.equal(status, 401, route);
  await ctx.close();
}));
