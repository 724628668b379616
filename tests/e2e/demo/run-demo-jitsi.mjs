// tools/demo --jitsi: a Jitsi Meet meeting on this machine. Debian's prosody
// in a network namespace (lib/prosody.mjs, with the focus stand-in; no
// jicofo or videobridge here, so the meeting is 1:1 peer to peer); the
// appliance (`cloakroomd --config`, test camera and tone) with its HTTPS
// page, paired and joined to the Jitsi room through its API by the
// `cloakroom` command line; and a page running the real lib-jitsi-meet with
// Jitsi's E2EE (Olm keys, SAS) for a person to join the same meeting from
// this machine's browser. `--check` joins that page headless, prints what
// each side decoded and exits (non-zero unless both decoded the other).
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startProsody, sleep } from '../lib/prosody.mjs';
import { launchBrowser } from '../lib/browser.mjs';
import { startJitsiPageServer, openJitsiParticipant, decodeWindow } from '../jitsi/page.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));
const E2E = join(HERE, '..');
const REPO = join(E2E, '..', '..');
const BIN = process.env.CLOAKROOMD_BIN || join(REPO, 'target', 'debug', 'cloakroomd');
const CLI = process.env.CLOAKROOM_BIN || join(REPO, 'target', 'debug', 'cloakroom');
const check = process.argv.includes('--check');
const ROOM = 'demo-room';

const prosody = await startProsody({ maxSeconds: check ? 300 : 24 * 3600 });
const pages = await startJitsiPageServer();
const dir = mkdtempSync(join(tmpdir(), 'cloakroom-demo-jitsi-'));
writeFileSync(join(dir, 'cloakroom.toml'), [
  '[room]', 'name = "Demo room"',
  '[devices]', 'camera = "test"', 'microphone = "test"', 'speaker = "none"',
  '[video]', 'resolution = "640x480"', 'framerate = 20', 'codec = "vp8"',
  '[web]', 'bind = "127.0.0.1"', `https_port = ${check ? 0 : Number(process.env.DEMO_HTTPS_PORT || 8443)}`, 'http_port = 0',
  // prosody here speaks plain WebSocket from its namespace: allowed for that one host.
  '[links]', `plain_ws_hosts = ["${prosody.ip}"]`,
  '[paths]', `state_dir = "${join(dir, 'state')}"`, '',
].join('\n'));
const daemon = spawn(BIN, ['--config', join(dir, 'cloakroom.toml'), '--print-pairing'], { stdio: ['ignore', 'pipe', 'inherit'] });
const info = {};
daemon.stdout.on('data', (b) => {
  for (const l of String(b).split('\n')) {
    const i = l.indexOf(' ');
    if (i > 0) info[l.slice(0, i)] = l.slice(i + 1);
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
cli(['pair', info.code, '--device', info.url, '--fingerprint', info.fingerprint]);
const link = prosody.jitsiLink(ROOM);
cli(['join', '-'], `${link}\n`);
let last = null;
for (let i = 0; i < 60; i++) {
  const r = cli(['status']);
  last = r.stdout.trim().replace(/\n/g, '; ');
  if (r.stdout.includes('state: in meeting')) break;
  await sleep(500);
}
const pageUrl = `${pages.url}#ws=${encodeURIComponent(prosody.wsUrl)}&room=${ROOM}&domain=${prosody.domain}&name=Visitor`;

async function shutdown(code) {
  daemon.kill('SIGTERM');
  await Promise.race([new Promise((r) => daemon.on('exit', r)), sleep(8000)]);
  await pages.close();
  await prosody.stop();
  rmSync(dir, { recursive: true, force: true });
  process.exit(code);
}
process.on('SIGINT', () => shutdown(0));
process.on('SIGTERM', () => shutdown(0));

console.log(`\nThe room's web page: ${info.url}  (certificate ${info.fingerprint})`);
console.log(`  pairing code: ${info.code}`);
console.log(`  the room: ${last}`);
console.log(`  the meeting: ${link}`);
if (!check) {
  console.log(`\nJoin the meeting with lib-jitsi-meet (Jitsi's E2EE): ${pageUrl}\n(in a browser on this machine). Ctrl-C stops.\n`);
} else {
  const browser = await launchBrowser();
  let ok = false;
  try {
    const P = await openJitsiParticipant(browser, { pageUrl: pages.url, prosody, room: ROOM, display: 'Visitor' });
    const s = await P.waitFor((s) => s.p2pActive && s.rtp?.iceState === 'connected', 30000, 'the room\'s P2P session');
    const w = await decodeWindow(P, 5000);
    await sleep(2000);
    const st = cli(['status']).stdout.trim().replace(/\n/g, '; ');
    console.log(`lib-jitsi-meet page: decoded ${w.decoded} frames of the room in ${w.seconds} s; E2EE transforms on `
      + `${s.rtp.transforms.receivers.filter((t) => t.transform).length} receivers; keys from the room: `
      + `${s.participants.map((p) => p.keysReceived).join(',')}`);
    console.log(`room status: ${st}`);
    await P.page.screenshot({ path: join(E2E, 'artifacts', 'demo-jitsi.png'), fullPage: true }).catch(() => {});
    console.log(`screenshot: ${join(E2E, 'artifacts', 'demo-jitsi.png')}`);
    ok = w.decoded >= 50 && st.includes('state: in meeting');
    await P.close();
  } catch (e) {
    console.error(`demo check failed: ${e.message}`);
  }
  await browser.close();
  await shutdown(ok ? 0 : 1);
}
