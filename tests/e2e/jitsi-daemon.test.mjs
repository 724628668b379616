// The room in a Jitsi Meet meeting with Jitsi's own E2EE (issue 13): the
// daemon (`cloakroomd --join jitsi+ws://…`) and real lib-jitsi-meet pages in
// Debian's Chromium, on Debian's prosody in a network namespace with no
// default route (lib/prosody.mjs). No jicofo or videobridge here: the room
// offers a P2P session, which lib-jitsi-meet accepts and encrypts. Keys go
// over Olm in MUC private messages, frames are JFrame AES-GCM. Needs root.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { keepFailureLogs } from './lib/artifacts.mjs';
import { startProsody, sleep } from './lib/prosody.mjs';
import { launchBrowser } from './lib/browser.mjs';
import { startDaemon, DAEMON_BIN } from './lib/daemon.mjs';
import { startJitsiPageServer, openJitsiParticipant, decodeWindow, brief } from './jitsi/page.mjs';

const MOTION_MIN = 1.0; // mean absolute pixel difference (0..255) between samples 300 ms apart
const AUDIO_RMS_MIN = 0.005; // the room's test tone; silence is 0
const KEY_ROTATION_DEBOUNCE_MS = 5000; // a new key this long after a participant leaves (as lib-jitsi-meet)

let prosody, server, browser;
const pages = new Set();
const daemons = new Set();

before(async () => {
  prosody = await startProsody();
  server = await startJitsiPageServer();
  browser = await launchBrowser();
});

after(async () => {
  for (const p of pages) await p.close();
  for (const d of daemons) await d.stop();
  await browser?.close();
  await server?.close();
  await prosody?.stop();
});

function step(name, fn) {
  return async (t) => {
    try {
      await fn(t);
    } catch (e) {
      const extra = { prosody: prosody?.log() ?? '' };
      for (const d of daemons) extra[`daemon-${d.room}`] = d.stderr.join('\n');
      await keepFailureLogs(e, { prefix: 'jitsi-daemon-', name, janus: null, participants: pages, extra });
      throw e;
    } finally {
      for (const p of pages) await p.close();
      pages.clear();
      for (const d of daemons) await d.stop();
      daemons.clear();
    }
  };
}

async function page(room, opts = {}) {
  const p = await openJitsiParticipant(browser, { pageUrl: server.url, prosody, room, ...opts });
  pages.add(p);
  return p;
}

function room(roomName) {
  const d = startDaemon({ link: prosody.jitsiLink(roomName), rustLog: 'info,webrtc=warn,rtc=warn' });
  d.room = roomName;
  daemons.add(d);
  return d;
}

/** The room's endpoint id, as the page sees it (its display name is the daemon's). */
async function roomId(P) {
  const s = await P.waitFor((s) => s.participants.some((p) => p.display === 'Board room'), 20000, 'the room in the meeting');
  return s.participants.find((p) => p.display === 'Board room').id;
}

/** `P`'s picture of `id` moves (two rounds of five samples at most). */
async function moving(P, id) {
  let m;
  for (let i = 0; i < 2; i++) {
    m = await P.motion(id, 5, 300);
    if (Math.max(...m.diffs) > MOTION_MIN) return m;
  }
  return m;
}

test('a lib-jitsi-meet page and the room see and hear each other, end-to-end encrypted over P2P', { timeout: 120000 }, step('media', async () => {
  const name = `room${process.pid}a`;
  const P = await page(name, { display: 'Page A' });
  const D = room(name);
  const id = await roomId(P);
  await P.waitForParticipant(id, 20000, { e2ee: true });
  const s = await P.waitFor((s) => s.p2pActive && s.rtp?.iceState === 'connected', 30000, 'the room\'s P2P session');
  // Both directions go through lib-jitsi-meet's E2EE transforms (insertable streams).
  assert.ok(s.rtp.transforms.senders.every((t) => t.transform) && s.rtp.transforms.receivers.every((t) => t.transform),
    `E2EE transforms on every sender and receiver: ${JSON.stringify(s.rtp.transforms)}`);

  // The page decodes the room: frames, motion, sound.
  let w;
  for (let i = 0; i < 3; i++) {
    w = await decodeWindow(P, 5000);
    console.log(`page decoded ${w.decoded} frames of the room in ${w.seconds} s`);
    if (w.decoded >= 50) break;
  }
  assert.ok(w.decoded >= 50, `the page decodes >= 50 frames of the room in 5 s: ${brief(w.after ?? w)}`);
  const m = await moving(P, id);
  assert.ok(Math.max(...m.diffs) > MOTION_MIN, `the room's picture moves at the page: ${JSON.stringify(m)}`);
  const audio = (await P.stats()).remote[id];
  assert.ok(audio?.audioRmsMax > AUDIO_RMS_MIN, `the page hears the room's tone: ${JSON.stringify(audio)}`);

  // The room decodes the page: its frames open with the key the page sent over Olm.
  const before_ = await D.waitFor((st) => (st.participants.find((p) => p.display === 'Page A')?.decoded_video ?? 0) > 0, 20000, 'the page\'s video decoded');
  await sleep(5000);
  const a = before_.participants.find((p) => p.display === 'Page A');
  const b = D.participant('Page A');
  const decoded = b.decoded_video - a.decoded_video;
  console.log(`room decoded ${decoded} frames of the page in 5 s; decrypted ${b.decrypted}, failures ${b.decrypt_failures}`);
  assert.ok(decoded >= 50, `the room decodes >= 50 frames of the page in 5 s: ${JSON.stringify(b)}`);
  assert.ok(b.decrypted > 100 && b.decrypt_failures * 20 < b.decrypted, `the page's frames open with its key: ${JSON.stringify(b)}`);
  assert.ok(b.decoded_audio > 0, 'the room decodes the page\'s audio');
}));

test('SAS: the page and the room show the same code', { timeout: 90000 }, step('sas', async () => {
  const name = `room${process.pid}s`;
  const P = await page(name, { display: 'Page S' });
  const D = room(name);
  const id = await roomId(P);
  await P.waitForParticipant(id, 20000, { e2ee: true });
  await P.startVerification(id);
  const s = await P.waitFor((s) => s.participants.find((p) => p.id === id)?.sas, 15000, 'the SAS code at the page');
  const pageCode = s.participants.find((p) => p.id === id).sas.decimal;
  // The room shows its code (the screen and the log); the log line carries the decimals.
  const deadline = Date.now() + 10000;
  let line;
  while (!line && Date.now() < deadline) {
    line = D.stderr.find((l) => l.includes('verification') && l.includes('decimals'));
    if (!line) await sleep(200);
  }
  assert.ok(line, `the room logs its SAS code:\n${D.stderr.slice(-20).join('\n')}`);
  const roomCode = (line.match(/decimals: \[(\d+), (\d+), (\d+)\]/) ?? []).slice(1).map(Number);
  console.log(`SAS decimals: page ${JSON.stringify(pageCode)}, room ${JSON.stringify(roomCode)}`);
  assert.deepEqual(roomCode, pageCode.map(Number), 'the same code on both sides');
}));

test('a page that joined and left cannot open what the room seals after it left', { timeout: 120000 }, step('rotation', async () => {
  const name = `room${process.pid}r`;
  const A = await page(name, { display: 'Page A' });
  const D = room(name);
  const id = await roomId(A);
  await A.waitForParticipant(id, 20000, { e2ee: true });
  await A.waitFor((s) => s.p2pActive && s.rtp?.iceState === 'connected', 30000, 'the room\'s P2P session');
  const C = await page(name, { display: 'Page C' });
  await C.waitForParticipant(id, 20000, { e2ee: true });
  const cKey = await C.receivedKey(id);
  assert.ok(cKey, 'page C received the room\'s key over Olm');
  const indexBefore = (await A.stats()).participants.find((p) => p.id === id).lastKeyIndex;
  pages.delete(C);
  await C.close();
  // The room sends a new key (next index) to the pages still there.
  const s = await A.waitFor((s) => (s.participants.find((p) => p.id === id)?.lastKeyIndex ?? -1) > indexBefore,
    KEY_ROTATION_DEBOUNCE_MS + 15000, 'a new key from the room after C left');
  const newIndex = s.participants.find((p) => p.id === id).lastKeyIndex;
  await sleep(2000);
  const w = await decodeWindow(A, 3000);
  assert.ok(w.decoded >= 20, `A still decodes the room with the new key: ${brief(w.after ?? w)}`);
  // With C's key in place of the new one, nothing the room sends now opens.
  await A.forceKeyFor(id, cKey, newIndex);
  await sleep(1000);
  const dark = await decodeWindow(A, 3000);
  console.log(`after C left: A decodes ${w.decoded} frames with the new key, ${dark.decoded} with C's key`);
  assert.ok(dark.decoded <= 2, `frames sealed after C left do not open with C's key: ${dark.decoded} decoded`);
}));

test('a page without E2EE gets nothing of the room', { timeout: 90000 }, step('plain', async () => {
  const name = `room${process.pid}p`;
  const P = await page(name, { display: 'Plain', e2ee: false });
  const D = room(name);
  const id = await roomId(P);
  await D.waitFor((st) => st.state === 'in_room', 20000, 'the room in the meeting');
  await sleep(8000);
  const s = await P.stats();
  console.log(`plain page: p2p ${s.p2pActive}, decoded ${s.rtp?.video?.framesDecoded ?? 0}`);
  assert.equal(s.remote?.[id]?.presentedFrames ?? 0, 0, `no frame of the room at a page without E2EE: ${brief(s)}`);
  assert.ok(!s.p2pActive, 'no media session with it');
  assert.ok(D.stderr.some((l) => l.includes('no media with this participant')), 'the room says why in its log');
}));

/** The appliance (`cloakroomd --config`) paired with the `cloakroom` command line, as an admin would. */
async function appliance(t) {
  const dir = mkdtempSync(join(tmpdir(), 'cloakroom-jitsi-appliance-'));
  writeFileSync(join(dir, 'cloakroom.toml'), [
    '[room]', 'name = "Board room"',
    '[devices]', 'camera = "test"', 'microphone = "test"', 'speaker = "none"',
    '[video]', 'resolution = "640x480"', 'framerate = 20', 'codec = "vp8"',
    '[web]', 'bind = "127.0.0.1"', 'https_port = 0', 'http_port = 0',
    '[links]', `plain_ws_hosts = ["${prosody.ip}"]`,
    '[paths]', `state_dir = "${join(dir, 'state')}"`, '',
  ].join('\n'));
  const child = spawn(DAEMON_BIN, ['--config', join(dir, 'cloakroom.toml'), '--print-pairing'], { stdio: ['ignore', 'pipe', 'pipe'] });
  const info = {};
  const log = [];
  child.stdout.on('data', (b) => { for (const l of String(b).split('\n')) { const i = l.indexOf(' '); if (i > 0) info[l.slice(0, i)] = l.slice(i + 1); } });
  child.stderr.on('data', (b) => log.push(...String(b).split('\n')));
  for (let i = 0; !(info.url && info.code) && i < 300; i++) await sleep(100);
  const cliBin = DAEMON_BIN.replace(/cloakroomd$/, 'cloakroom');
  const env = { ...process.env, CLOAKROOM_SESSION: join(dir, 'cli-session.json') };
  const cli = (args, input) => {
    const r = spawnSync(cliBin, args, { env, input, encoding: 'utf8', timeout: 20000 });
    assert.equal(r.status, 0, `cloakroom ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };
  const d = {
    room: 'appliance', stderr: log, cli,
    async stop() { child.kill('SIGTERM'); await Promise.race([new Promise((r) => child.on('exit', r)), sleep(8000)]); rmSync(dir, { recursive: true, force: true }); },
  };
  daemons.add(d);
  assert.ok(info.url, `cloakroomd --config started:\n${log.slice(-20).join('\n')}`);
  cli(['pair', info.code, '--device', info.url, '--fingerprint', info.fingerprint]);
  return d;
}

test('SAS from the admin side: the page and the room confirm the same code and both end verified', { timeout: 120000 }, step('sas-confirm', async () => {
  const name = `room${process.pid}v`;
  const P = await page(name, { display: 'Page V' });
  const D = await appliance();
  D.cli(['join', '-'], `${prosody.jitsiLink(name)}\n`);
  const id = await roomId(P);
  await P.waitForParticipant(id, 20000, { e2ee: true });
  await P.startVerification(id);
  const s = await P.waitFor((s) => s.participants.find((p) => p.id === id)?.sas, 15000, 'the SAS code at the page');
  const pageCode = s.participants.find((p) => p.id === id).sas.decimal.map(Number);
  let status = '';
  for (let i = 0; i < 50 && !status.includes('compare code'); i++) { status = D.cli(['status']); await sleep(200); }
  const roomCode = (status.match(/compare code (\d+) (\d+) (\d+)/) ?? []).slice(1).map(Number);
  console.log(`SAS: page ${pageCode.join(' ')}, room status "${status.split('\n').find((l) => l.startsWith('participants'))}"`);
  assert.deepEqual(roomCode, pageCode, 'the room\'s status shows the page\'s code');
  // People compared the codes: both sides say they match.
  D.cli(['verify', 'Page V', 'confirm']);
  await P.confirmVerification(id, true);
  const done = await P.waitFor((s) => s.participants.find((p) => p.id === id)?.verification, 15000, 'the page\'s verification result');
  assert.equal(done.participants.find((p) => p.id === id).verification.success, true, `the page verified the room: ${brief(done)}`);
  for (let i = 0; i < 50 && !status.includes('(verified)'); i++) { status = D.cli(['status']); await sleep(200); }
  assert.ok(status.includes('Page V: encrypted (verified)'), `the room verified the page, whose frames open: ${status}`);
}));
