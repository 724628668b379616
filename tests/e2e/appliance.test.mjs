// The appliance's web page in real Chromium: pairing (wrong code refused,
// right code gives the admin page, rate limit after 10 wrong tries), settings
// saved, join and leave from the admin page and from the phone's scan link,
// a POST without CSRF token refused. Runs the crate's `appliance-demo`
// example (real supervisor, pretend media; no Janus, no root), built here with
// `cargo build -p cloakroom-appliance --example appliance-demo` (a no-op when
// fresh) unless CLOAKROOM_APPLIANCE_DEMO names a binary. Screenshots go to CLOAKROOM_SHOTS
// (default /tmp/cloakroom-shots), outside git.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { launchBrowser } from './lib/browser.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));
const REPO = join(HERE, '..', '..');
const TARGET = process.env.CARGO_TARGET_DIR || join(REPO, 'target');
const BIN = process.env.CLOAKROOM_APPLIANCE_DEMO || join(TARGET, 'debug', 'examples', 'appliance-demo');
const SHOTS = process.env.CLOAKROOM_SHOTS || '/tmp/cloakroom-shots';
const LINK = 'janus+wss://sfu.example:8989/janus?room=1234#e2ee=AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8';

let device, browser, dir;

async function startDevice() {
  dir = mkdtempSync(join(tmpdir(), 'cloakroom-appliance-e2e-'));
  const config = join(dir, 'cloakroom.toml');
  writeFileSync(config, `[room]\nname = "Aquarium"\n[web]\nbind = "127.0.0.1"\nhttps_port = 0\nhttp_port = 0\n[paths]\nstate_dir = "${join(dir, 'state')}"\n`);
  const child = spawn(BIN, ['--config', config], { stdio: ['ignore', 'pipe', 'inherit'] });
  const info = {};
  await new Promise((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => reject(new Error('appliance-demo did not start within 30 s')), 30000);
    child.once('exit', (code) => reject(new Error(`appliance-demo exited with ${code}`)));
    child.stdout.on('data', (d) => {
      buf += d;
      for (const line of buf.split('\n')) {
        const [k, v] = line.split(' ');
        if (v) info[k] = v;
      }
      if (info['join-path']) { clearTimeout(timer); resolve(); }
    });
  });
  return { child, ...info };
}

before(async () => {
  if (!process.env.CLOAKROOM_APPLIANCE_DEMO) {
    const build = spawnSync('cargo', ['build', '--locked', '-q', '-p', 'cloakroom-appliance', '--example', 'appliance-demo'],
      { cwd: REPO, stdio: 'inherit' });
    assert.equal(build.status, 0, 'cargo build of appliance-demo failed');
  }
  assert.ok(existsSync(BIN), `appliance-demo not found at ${BIN}: cargo build -p cloakroom-appliance --example appliance-demo`);
  mkdirSync(SHOTS, { recursive: true });
  device = await startDevice();
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  device?.child.kill('SIGTERM');
  if (dir) rmSync(dir, { recursive: true, force: true });
});

// The device certificate is self-signed; people compare its fingerprint, the test trusts it.
const newContext = (opts = {}) => browser.newContext({ ignoreHTTPSErrors: true, ...opts });

test('pairing, admin page, settings, join and leave, CSRF', { timeout: 120000 }, async () => {
  const ctx = await newContext({ viewport: { width: 1100, height: 1400 } });
  const page = await ctx.newPage();
  await page.goto(device.url);
  await page.locator('#pair').waitFor({ state: 'visible' });

  // Wrong code: refused with a message, still on the pairing form.
  const wrong = String((Number(device.code) + 1) % 1000000).padStart(6, '0');
  await page.fill('#code', wrong);
  await page.click('#pair-form button');
  await page.waitForFunction(() => document.getElementById('pair-error').textContent.includes('wrong code'));
  assert.equal(await page.locator('#admin').isVisible(), false);

  // Right code: the admin page.
  await page.fill('#code', device.code);
  await page.click('#pair-form button');
  await page.locator('#admin').waitFor({ state: 'visible' });
  const cookies = await ctx.cookies();
  const session = cookies.find((c) => c.name === '__Host-cloakroom');
  assert.ok(session, 'session cookie set');
  assert.equal(session.httpOnly, true);
  assert.equal(session.secure, true);
  assert.equal(session.sameSite, 'Strict');
  await page.waitForFunction(() => document.getElementById('state').textContent === 'idle');
  assert.equal(await page.textContent('#fingerprint'), device.fingerprint);

  // A POST without the CSRF header is refused, even from the page's own origin with the cookie.
  const noCsrf = await page.evaluate(async () => {
    const r = await fetch('/api/mute', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"muted":true}' });
    return { status: r.status, body: await r.json() };
  });
  assert.equal(noCsrf.status, 403);
  assert.equal(noCsrf.body.error.code, 'csrf');

  // Settings: a bad value is refused with the field named, a good one is saved.
  await page.locator('#settings-form input[name=room_name]').waitFor();
  await page.waitForFunction(() => document.querySelector('#settings-form input[name=room_name]').value === 'Aquarium');
  await page.fill('#settings-form input[name=resolution]', '9999x9999');
  await page.evaluate(() => document.querySelector('#settings-form input[name=resolution]').removeAttribute('pattern'));
  await page.click('#settings-form button');
  await page.waitForFunction(() => document.getElementById('settings-error').textContent.includes('resolution'));
  await page.fill('#settings-form input[name=resolution]', '1920x1080');
  await page.fill('#settings-form input[name=room_name]', 'Aquarium, 3rd floor');
  await page.click('#settings-form button');
  await page.waitForFunction(() => document.getElementById('settings-ok').textContent === 'Saved.');

  // Join: the supervisor goes to the meeting (pretend media), the verification string shows.
  await page.fill('#link', 'https://meet.example/room');
  await page.click('#join-form button');
  await page.waitForFunction(() => document.getElementById('join-error').textContent.includes('scheme'));
  await page.fill('#link', LINK);
  await page.click('#join-form button');
  await page.waitForFunction(() => document.getElementById('state').textContent === 'in meeting', null, { timeout: 10000 });
  const verification = await page.textContent('#verification');
  assert.match(verification, /^\d{3}( \d{3}){4}$/);
  assert.equal(await page.textContent('#encrypted'), 'encrypted');
  assert.ok(!(await page.content()).includes('AAECAwQF'), 'the key is never on the page');
  await page.click('#mute');
  await page.waitForFunction(() => document.getElementById('mute').textContent === 'Unmute');
  await page.screenshot({ path: join(SHOTS, 'admin.png'), fullPage: true });
  await page.click('#leave');
  await page.waitForFunction(() => document.getElementById('state').textContent === 'idle', null, { timeout: 10000 });
  await ctx.close();
});

test('phone joins by the scan link', { timeout: 60000 }, async () => {
  const ctx = await newContext({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true });
  const page = await ctx.newPage();
  await page.goto(new URL(device['join-path'], device.url).href);
  await page.locator('#guest').waitFor({ state: 'visible' });
  assert.equal(new URL(page.url()).hash, '', 'the single-use token is dropped from the address bar');
  await page.fill('#link', LINK);
  await page.tap('#join-form button');
  await page.waitForFunction(() => document.getElementById('state').textContent === 'in meeting', null, { timeout: 10000 });
  await page.screenshot({ path: join(SHOTS, 'join-phone.png'), fullPage: true });
  // The guest session cannot read settings.
  const settings = await page.evaluate(async () => (await fetch('/api/settings')).status);
  assert.equal(settings, 403);
  await page.tap('#leave');
  await page.waitForFunction(() => document.getElementById('state').textContent === 'idle', null, { timeout: 10000 });
  // The same scan link again: used.
  const again = await ctx.newPage();
  await again.goto(new URL(device['join-path'], device.url).href);
  await again.locator('#expired').waitFor({ state: 'visible' });
  await ctx.close();
});

test('ten wrong codes pause pairing', { timeout: 60000 }, async () => {
  const ctx = await newContext();
  const page = await ctx.newPage();
  await page.goto(device.url);
  await page.locator('#pair').waitFor({ state: 'visible' });
  for (let i = 0; i < 10; i++) {
    await page.fill('#code', '000000' === device.code ? '000001' : '000000');
    await page.click('#pair-form button');
    await page.waitForFunction((n) => document.getElementById('pair-error').dataset.n !== String(n) && document.getElementById('pair-error').textContent !== '', i);
    await page.evaluate((n) => { document.getElementById('pair-error').dataset.n = String(n); }, i);
  }
  const message = await page.textContent('#pair-error');
  assert.match(message, /too many wrong tries/);
  // Every /api route but pair and scan refuses a browser without a session.
  const statuses = await page.evaluate(async () => {
    const out = {};
    for (const [m, p] of [['GET', '/api/status'], ['GET', '/api/settings'], ['PUT', '/api/settings'], ['GET', '/api/devices'],
      ['GET', '/api/logs'], ['POST', '/api/join'], ['POST', '/api/leave'], ['POST', '/api/mute'], ['GET', '/api/session']]) {
      const r = await fetch(p, { method: m, headers: { 'content-type': 'application/json' }, body: m === 'GET' ? undefined : '{}' });
      out[`${m} ${p}`] = r.status;
    }
    return out;
  });
  for (const [route, status] of Object.entries(statuses)) assert.equal(status, 401, route);
  await ctx.close();
});
