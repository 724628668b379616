// tools/demo: Janus in a network namespace; the appliance (`cloakroomd
// --config`, test camera and tone) with its HTTPS page, paired and joined to
// the Janus room with a fresh key through its API by the `cloakroom` command
// line, as an admin would; and a local viewer page showing the room's video
// twice: opened with the key, and as the router forwards it. Prints the
// appliance's address, certificate fingerprint and current pairing code.
// `--check` opens the viewer in headless Chromium, prints what both panes
// decoded and exits (non-zero if the keyed pane did not decode or the
// keyless one did).
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createServer } from 'node:http';
import { readFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startJanus, sleep } from '../lib/janus.mjs';
import { launchBrowser } from '../lib/browser.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));
const E2E = join(HERE, '..');
const REPO = join(E2E, '..', '..');
const BIN = process.env.CLOAKROOMD_BIN || join(REPO, 'target', 'debug', 'cloakroomd');
const CLI = process.env.CLOAKROOM_BIN || join(REPO, 'target', 'debug', 'cloakroom');
const check = process.argv.includes('--check');
const codec = process.argv.includes('--h264') ? 'h264' : 'vp8';
const ROOM = 1234;

const FILES = new Map([
  ['/page/demo.html', [join(HERE, 'demo.html'), 'text/html']],
  ['/page/demo.mjs', [join(HERE, 'demo.mjs'), 'text/javascript']],
  ['/page/participant.html', [join(E2E, 'page', 'participant.html'), 'text/html']],
  ['/page/participant.mjs', [join(E2E, 'page', 'participant.mjs'), 'text/javascript']],
  ['/page/transform-worker.mjs', [join(E2E, 'page', 'transform-worker.mjs'), 'text/javascript']],
  ['/lib/frame-crypto.mjs', [join(E2E, 'lib', 'frame-crypto.mjs'), 'text/javascript']],
]);

const janus = await startJanus({ room: ROOM, maxSeconds: check ? 300 : 24 * 3600 });
const key = randomBytes(32);
const { host } = new URL(janus.wsUrl);

// The appliance, as on a board but without root: ports and state from its config.
const dir = mkdtempSync(join(tmpdir(), 'cloakroom-demo-'));
writeFileSync(join(dir, 'cloakroom.toml'), [
  '[room]', 'name = "Demo room"',
  '[devices]', 'camera = "test"', 'microphone = "test"', 'speaker = "none"',
  '[video]', 'resolution = "640x480"', 'framerate = 20', `codec = "${codec}"`,
  '[web]', 'bind = "127.0.0.1"', `https_port = ${check ? 0 : Number(process.env.DEMO_HTTPS_PORT || 8443)}`, 'http_port = 0',
  // Janus here speaks plain WebSocket from its namespace: allowed for that one host.
  '[links]', `plain_ws_hosts = ["${new URL(janus.wsUrl).hostname}"]`,
  '[paths]', `state_dir = "${join(dir, 'state')}"`, '',
].join('\n'));
const daemon = spawn(BIN, ['--config', join(dir, 'cloakroom.toml'), '--print-pairing'], { stdio: ['ignore', 'pipe', 'inherit'] });
const info = {};
let announced = false;
daemon.stdout.on('data', (b) => {
  for (const l of String(b).split('\n')) {
    const i = l.indexOf(' ');
    if (i <= 0) continue;
    const [k, v] = [l.slice(0, i), l.slice(i + 1)];
    if (announced && k === 'code' && v !== info.code) console.log(`  new pairing code: ${v}`);
    info[k] = v;
  }
});
for (let i = 0; !(info.url && info.code) && i < 300; i++) await sleep(100);
if (!info.url) { console.error('cloakroomd did not start (its log is above)'); process.exit(1); }
const env = { ...process.env, CLOAKROOM_SESSION: join(dir, 'cli-session.json') };
const cli = (args, input) => {
  const r = spawnSync(CLI, args, { env, input, encoding: 'utf8', timeout: 20000 });
  if (r.status !== 0) console.error(`cloakroom ${args[0]}: ${r.stderr.trim()}`);
  return r;
};
const firstCode = info.code;
cli(['pair', firstCode, '--device', info.url, '--fingerprint', info.fingerprint]);
cli(['join', '-'], `janus+ws://${host}/?room=${ROOM}#e2ee=${key.toString('base64url')}\n`);
let last = null;
for (let i = 0; i < 60; i++) {
  const r = cli(['status']);
  last = r.stdout.trim().replace(/\n/g, '; ');
  if (r.stdout.includes('state: in meeting')) break;
  await sleep(500);
}
// The code just used is gone; the room screen (and --print-pairing) shows the next one.
for (let i = 0; info.code === firstCode && i < 50; i++) await sleep(100);

const server = createServer(async (req, res) => {
  const f = FILES.get(new URL(req.url, 'http://x').pathname);
  if (!f || req.method !== 'GET') { res.writeHead(404).end(); return; }
  res.writeHead(200, { 'content-type': f[1], 'cache-control': 'no-store' }).end(await readFile(f[0]));
});
await new Promise((r) => server.listen(check ? 0 : Number(process.env.DEMO_PORT || 8080), '127.0.0.1', r));
const url = `http://127.0.0.1:${server.address().port}/page/demo.html#ws=${encodeURIComponent(janus.wsUrl)}&room=${ROOM}&codec=${codec}&key=${key.toString('hex')}`;

async function shutdown(code) {
  daemon.kill('SIGTERM');
  await Promise.race([new Promise((r) => daemon.on('exit', r)), sleep(8000)]);
  server.close();
  await janus.stop();
  rmSync(dir, { recursive: true, force: true });
  process.exit(code);
}
process.on('SIGINT', () => shutdown(0));
process.on('SIGTERM', () => shutdown(0));

console.log(`\nThe room's web page: ${info.url}  (certificate ${info.fingerprint})`);
console.log(`  pairing code: ${info.code}  (single use; a new one is printed here after each pairing)`);
console.log(`  the room: ${last}`);
announced = true;
if (!check) {
  console.log(`\nThe meeting as others see it: ${url}\n(in a browser on this machine; the key is in the fragment, which is never sent). Ctrl-C stops.\n`);
} else {
  const browser = await launchBrowser();
  const page = await browser.newPage({ viewport: { width: 1440, height: 760 } });
  await page.goto(url);
  await page.waitForFunction(() => window.demoReady !== undefined);
  await page.evaluate(() => window.demoReady);
  await sleep(12000);
  const s = await page.evaluate(() => window.demoStats);
  const withKey = s.key.video.framesDecoded;
  const without = s.nokey.video;
  const rubbish = await page.evaluate(() => window.rubbishFrames ?? 0);
  console.log(`with the key: decoded ${withKey} frames; without: received ${without.framesReceived}, decoded ${without.framesDecoded}, `
    + `${s.nokey.worker.decryptFailures.video} did not open; rubbish view redrawn ${rubbish} times`);
  const st = cli(['status']).stdout.trim().replace(/\n/g, '; ');
  console.log(`room status: ${st}`);
  await page.screenshot({ path: join(E2E, 'artifacts', 'demo.png'), fullPage: true }).catch(() => {});
  console.log(`screenshot: ${join(E2E, 'artifacts', 'demo.png')}`);
  await browser.close();
  await shutdown(st.includes('state: in meeting') && withKey >= 50 && without.framesDecoded <= 2 && s.nokey.worker.decryptFailures.video >= 50 && rubbish > 0 ? 0 : 1);
}
