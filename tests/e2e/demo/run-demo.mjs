// tools/demo: Janus in a network namespace, cloakroomd joining its room with a
// fresh key, and a local page showing the room's video twice: opened with the
// key, and as the router forwards it. `--check` opens the page in headless
// Chromium, prints what both panes decoded and exits (non-zero if the keyed
// pane did not decode or the keyless one did).
import { spawn } from 'node:child_process';
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
const daemon = spawn(BIN, ['--join', '-', '--codec', codec, '--name', 'Demo room', '--status-interval-ms', '2000'], { stdio: ['pipe', 'pipe', 'inherit'] });
daemon.stdin.end(`janus+ws://${host}/?room=${ROOM}#e2ee=${key.toString('base64url')}\n`);
let last = null;
daemon.stdout.on('data', (b) => { for (const l of String(b).split('\n')) if (l.startsWith('{')) last = l; });

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
  process.exit(code);
}
process.on('SIGINT', () => shutdown(0));
process.on('SIGTERM', () => shutdown(0));

if (!check) {
  console.log(`\nOpen ${url}\n(in a browser on this machine; the key is in the fragment, which is never sent). Ctrl-C stops.\n`);
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
  console.log(`room status: ${last}`);
  await page.screenshot({ path: join(E2E, 'artifacts', 'demo.png'), fullPage: true }).catch(() => {});
  console.log(`screenshot: ${join(E2E, 'artifacts', 'demo.png')}`);
  await browser.close();
  await shutdown(withKey >= 50 && without.framesDecoded <= 2 && s.nokey.worker.decryptFailures.video >= 50 && rubbish > 0 ? 0 : 1);
}
