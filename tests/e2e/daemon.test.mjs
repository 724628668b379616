// cloakroomd (the room) in a real Janus VideoRoom with headless Chromium
// participants, every frame end-to-end encrypted. Needs root (network
// namespace) and the daemon binary: `cargo build -p cloakroomd` first, or set
// CLOAKROOMD_BIN.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { keepFailureLogs } from './lib/artifacts.mjs';
import { startJanus, sleep } from './lib/janus.mjs';
import { startPageServer, launchBrowser, openParticipant, browserCapabilities } from './lib/browser.mjs';
import { startDaemon as startDaemonProcess, assertBrowserDecodesRoom, DAEMON_BIN } from './lib/daemon.mjs';

const BIN = DAEMON_BIN;
const ROOM = 4321;

let janus, server, browser;
const open = new Set();
const daemons = new Set();
const keyBytes = randomBytes(32);
const keyHex = keyBytes.toString('hex');
const keyB64 = keyBytes.toString('base64url');

before(async () => {
  assert.ok(existsSync(BIN), `cloakroomd not found at ${BIN}: run \`cargo build -p cloakroomd\` or set CLOAKROOMD_BIN`);
  janus = await startJanus({ room: ROOM });
  server = await startPageServer();
  browser = await launchBrowser();
});

after(async () => {
  for (const p of open) await p.close();
  for (const d of daemons) await d.stop();
  await browser?.close();
  await server?.close();
  await janus?.stop();
});

/** Starts the daemon; the link (with the key) goes in on stdin, never on the command line. */
function startDaemon({ codec = 'vp8', name = 'Board room', room = ROOM } = {}) {
  const { host } = new URL(janus.wsUrl);
  const d = startDaemonProcess({ link: `janus+ws://${host}/?room=${room}#e2ee=${keyB64}`, codec, name, bin: BIN });
  const stop = d.stop;
  d.stop = async () => {
    daemons.delete(d);
    return stop();
  };
  daemons.add(d);
  return d;
}

function step(name, fn) {
  return async (t) => {
    try {
      await fn(t);
    } catch (e) {
      const daemonLog = [...daemons].map((d) => `${d.stderr.join('\n')}\n-- last status\n${JSON.stringify(d.status)}`);
      await keepFailureLogs(e, { prefix: 'daemon-', name, janus, participants: open, extra: { daemon: daemonLog.join('\n\n') } });
      throw e;
    }
  };
}

async function join_(opts) {
  const p = await openParticipant(browser, { pageUrl: server.url, wsUrl: janus.wsUrl, room: ROOM, ...opts });
  p.display = opts.display;
  open.add(p);
  return p;
}

async function leave(p) {
  open.delete(p);
  await p.close();
}

/** The room decodes a browser participant's encrypted video and audio, with no decrypt failures. */
async function assertRoomDecodesBrowser(d, display) {
  const st = await d.waitFor((s) => {
    const p = s.participants.find((x) => x.display === display);
    return p && p.decoded_video >= 40 && p.decoded_audio >= 20;
  }, 40000, `the room decoding ${display}`);
  const p = st.participants.find((x) => x.display === display);
  assert.equal(p.decrypt_failures, 0, JSON.stringify(p));
  assert.ok(p.decrypted >= p.decoded_video, JSON.stringify(p));
  assert.ok(p.packets_received > 0 && p.rtt_ms > 0, `loss/RTT stats: ${JSON.stringify(p)}`);
  return p;
}

let room;

test('vp8: a browser with the key decodes the room (≥ 50 frames in 5 s, motion) and hears it', { timeout: 90000 }, step('vp8-browser-decodes-room', async (t) => {
  room = startDaemon({ codec: 'vp8' });
  await room.waitFor((s) => s.state === 'in_room' && s.sent.video_frames > 0, 30000, 'the room publishing');
  const B = await join_({ display: 'B-key', keyHex, publish: false, subscribe: true, codec: 'vp8' });
  const r = await assertBrowserDecodesRoom(B, 'vp8');
  t.diagnostic(`decoded ${r.decoded} frames in ${r.seconds.toFixed(1)} s (windows ${JSON.stringify(r.windows)}); motion ${r.motion.map((x) => x.toFixed(1)).join(',')}; audio frames ${r.audioFrames}, energy ${r.energy.toFixed(3)}`);
  t.diagnostic(`room sent: ${JSON.stringify(room.status.sent)}`);
  assert.ok(room.status.sent.rtt_ms > 0, `publisher RTT measured: ${JSON.stringify(room.status.sent)}`);
  await leave(B);
}));

test('vp8: the room decodes an encrypted browser participant (video and audio, 0 decrypt failures)', { timeout: 90000 }, step('vp8-room-decodes-browser', async (t) => {
  assert.ok(room, 'needs the daemon from the first test');
  const P = await join_({ display: 'P-key', keyHex, publish: true, subscribe: false, codec: 'vp8' });
  const p = await assertRoomDecodesBrowser(room, 'P-key');
  t.diagnostic(`room received from P: ${JSON.stringify(p)}`);
  await leave(P);
  await room.waitFor((s) => !s.participants.some((x) => x.display === 'P-key'), 20000, 'P gone from the room');
}));

test('vp8: a browser publishing with a wrong key: the room counts decrypt failures and decodes nothing', { timeout: 90000 }, step('vp8-room-wrong-key', async (t) => {
  assert.ok(room, 'needs the daemon from the first test');
  const W = await join_({ display: 'W-wrong', keyHex: randomBytes(32).toString('hex'), publish: true, subscribe: false, codec: 'vp8' });
  const s1 = await room.waitFor((s) => (s.participants.find((x) => x.display === 'W-wrong')?.decrypt_failures ?? 0) >= 20, 40000, 'decrypt failures for W');
  await sleep(2000);
  const s2 = room.status;
  const a = s1.participants.find((x) => x.display === 'W-wrong');
  const b = s2.participants.find((x) => x.display === 'W-wrong');
  assert.ok(b.decrypt_failures > a.decrypt_failures, `failures count up: ${JSON.stringify({ a, b })}`);
  assert.equal(b.decrypted, 0, JSON.stringify(b));
  assert.ok(b.decoded_video <= 2, JSON.stringify(b));
  t.diagnostic(`room, wrong-key participant: ${JSON.stringify(b)}`);
  await leave(W);
}));

test('vp8: browsers with a wrong key or no key decode ≤ 2 frames of the room', { timeout: 90000 }, step('vp8-no-key', async (t) => {
  assert.ok(room, 'needs the daemon from the first test');
  const C = await join_({ display: 'C-wrong', keyHex: randomBytes(32).toString('hex'), publish: false, codec: 'vp8' });
  const D = await join_({ display: 'D-none', keyHex: null, publish: false, codec: 'vp8' });
  for (const P of [C, D]) await P.waitFor((s) => s.worker.decryptFailures.video >= 30, 30000, 'ciphertext video frames arriving');
  for (const P of [C, D]) {
    const s = await P.stats();
    const detail = `${P.display}: ${JSON.stringify({ video: s.video, worker: s.worker })}`;
    assert.ok(s.video.framesDecoded <= 2, `decoded ${s.video.framesDecoded}: ${detail}`);
    assert.equal(s.worker.decrypted.video, 0, detail);
    assert.equal(s.worker.decrypted.audio, 0, detail);
    t.diagnostic(`${P.display}: decoded ${s.video.framesDecoded}, failed to open ${s.worker.decryptFailures.video} video / ${s.worker.decryptFailures.audio} audio frames`);
  }
  await leave(C);
  await leave(D);
}));

test('vp8: SIGTERM leaves cleanly; the key never appears in the output', { timeout: 30000 }, step('vp8-leave', async (t) => {
  assert.ok(room, 'needs the daemon from the first test');
  const exit = await room.stop();
  assert.deepEqual(exit, { code: 0, signal: null }, room.stderr.slice(-20).join('\n'));
  const all = `${room.stderr.join('\n')}\n${room.stdout.join('\n')}`;
  assert.match(all, /left the meeting/);
  for (const secret of [keyB64, keyHex, keyB64.slice(0, 16)]) assert.ok(!all.includes(secret), 'the key appears in the daemon output');
  assert.match(all, /#\[redacted\]/);
  t.diagnostic(`exit ${JSON.stringify(exit)} after ${room.statuses} status lines`);
  room = null;
}));

test('h264 (h264 format): browser decodes the room, the room decodes the browser', { timeout: 120000 }, step('h264', async (t) => {
  const caps = await browserCapabilities(browser, server.url);
  if (!caps.h264) {
    t.skip('Chromium here offers no H.264');
    return;
  }
  const d = startDaemon({ codec: 'h264', name: 'Board room h264' });
  await d.waitFor((s) => s.state === 'in_room' && s.sent.video_frames > 0, 30000, 'the room publishing H.264');
  const B = await join_({ display: 'B-h264', keyHex, publish: false, subscribe: true, codec: 'h264' });
  const r = await assertBrowserDecodesRoom(B, 'h264');
  t.diagnostic(`browser decoded ${r.decoded} H.264 frames of the room in ${r.seconds.toFixed(1)} s (windows ${JSON.stringify(r.windows)}); motion ${r.motion.map((x) => x.toFixed(1)).join(',')}`);
  await leave(B);
  const P = await join_({ display: 'P-h264', keyHex, publish: true, subscribe: false, codec: 'h264' });
  const p = await assertRoomDecodesBrowser(d, 'P-h264');
  t.diagnostic(`room received from P-h264: ${JSON.stringify(p)}`);
  await leave(P);
  const exit = await d.stop();
  assert.deepEqual(exit, { code: 0, signal: null }, `the daemon's last lines:\n${d.stderr.slice(-40).join('\n')}`);
}));

test('no such room: the daemon does not retry what cannot work; it exits 1 with the room named', { timeout: 60000 }, step('no-such-room', async (t) => {
  const d = startDaemon({ room: 999999 });
  const exit = await Promise.race([d.exited, sleep(30000).then(() => null)]);
  assert.ok(exit, `still running: ${JSON.stringify(d.status)}`);
  assert.equal(exit.code, 1, JSON.stringify(exit));
  assert.match(d.status.state, /^failed: no such room: 999999/);
  const stderr = d.stderr.join('\n');
  assert.match(stderr, /could not join: no such room: 999999/);
  const joins = stderr.split('\n').filter((l) => / joining link=/.test(l)).length;
  assert.equal(joins, 1, `a room that does not exist is asked for once, not again:\n${stderr}`);
  daemons.delete(d);
  t.diagnostic(`last state: ${d.status.state}`);
}));
