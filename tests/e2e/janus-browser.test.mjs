// Browser to browser through a real Janus VideoRoom, every frame end-to-end
// encrypted in an RTCRtpScriptTransform. Needs root (network namespace).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startJanus, sleep } from './lib/janus.mjs';
import { startPageServer, launchBrowser, openParticipant, browserCapabilities } from './lib/browser.mjs';
import { ARTIFACTS, keepFailureLogs } from './lib/artifacts.mjs';

const ROOM = 1234;
const MOTION_MIN = 1.0; // mean absolute pixel difference (0..255) between samples 300 ms apart

let janus, server, browser;
const open = new Set();
const key = randomBytes(32).toString('hex');

before(async () => {
  janus = await startJanus({ room: ROOM });
  server = await startPageServer();
  browser = await launchBrowser();
});

after(async () => {
  for (const p of open) await p.close();
  await browser?.close();
  await server?.close();
  if (janus && process.env.CLOAKROOM_E2E_KEEP_LOGS) {
    mkdirSync(ARTIFACTS, { recursive: true });
    writeFileSync(join(ARTIFACTS, `${Date.now()}-janus.log`), janus.log());
  }
  await janus?.stop();
});

/** Run a test body; on failure keep Janus's log and the pages' logs under artifacts/. */
function step(name, fn) {
  return async (t) => {
    try {
      await fn(t);
    } catch (e) {
      await keepFailureLogs(e, { prefix: '', name, janus, participants: open });
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

/** A publishes with key K, B subscribes with K; returns them after B decoded its first frame. */
async function publisherAndSubscriber(codec) {
  const A = await join_({ display: `A-${codec}`, keyHex: key, publish: true, subscribe: false, codec });
  const B = await join_({ display: `B-${codec}`, keyHex: key, publish: false, subscribe: true, codec });
  await B.waitFor((s) => s.video.framesDecoded > 0, 20000, 'first decoded frame at B');
  return { A, B };
}

/** B decodes ≥ 50 frames in 5 s, all through the decryptor, with motion and audio. */
async function assertDecodesWithKey(A, B, codec) {
  const s0 = await B.stats();
  const t0 = Date.now();
  await sleep(5000);
  const s1 = await B.stats();
  const seconds = (Date.now() - t0) / 1000;
  const decoded = s1.video.framesDecoded - s0.video.framesDecoded;
  const decrypted = s1.worker.decrypted.video - s0.worker.decrypted.video;
  const sa = await A.stats();
  const detail = JSON.stringify({ seconds, decoded, decrypted, B: s1.video, Bw: s1.worker, Asent: sa.sent, Aw: sa.worker?.encrypted });
  assert.ok(decoded >= 50, `B decoded ${decoded} frames in ${seconds}s (want ≥ 50): ${detail}`);
  assert.ok(decrypted >= 50, `B's transform decrypted ${decrypted} video frames: ${detail}`);
  assert.equal(s1.worker.decryptFailures.video, 0, `video decrypt failures: ${detail}`);
  assert.ok(sa.worker.encrypted.video >= decoded, `A's transform encrypted ${sa.worker.encrypted.video} video frames: ${detail}`);
  assert.equal(s1.video.codec, codec === 'h264' ? 'video/H264' : 'video/VP8', detail);
  assert.equal(sa.sent.codec, s1.video.codec, detail);
  assert.deepEqual([s1.video.width, s1.video.height], [320, 240], detail);

  const m = await B.motion(5, 300);
  assert.ok(Math.max(...m.diffs) > MOTION_MIN, `no motion in B's picture: ${JSON.stringify(m)}`);

  assert.ok(s1.worker.decrypted.audio > 0, `decrypted audio frames: ${JSON.stringify(s1.worker)}`);
  assert.equal(s1.worker.decryptFailures.audio, 0, `audio decrypt failures: ${JSON.stringify(s1.worker)}`);
  assert.ok(s1.audio.totalAudioEnergy > 0, `audio energy: ${JSON.stringify(s1.audio)}`);
  return { decoded, seconds, motion: m.diffs, audioFrames: s1.worker.decrypted.audio, energy: s1.audio.totalAudioEnergy };
}

let A, B;

test('vp8: B with the key decodes ≥ 50 frames in 5 s with motion and hears audio', { timeout: 60000 }, step('vp8-with-key', async (t) => {
  ({ A, B } = await publisherAndSubscriber('vp8'));
  const r = await assertDecodesWithKey(A, B, 'vp8');
  t.diagnostic(`decoded ${r.decoded} frames in ${r.seconds.toFixed(1)} s; motion ${r.motion.map((d) => d.toFixed(1)).join(',')}; audio frames ${r.audioFrames}, energy ${r.energy.toFixed(3)}`);
}));

test('vp8: A ratchets its key; B ratchets forward and keeps decoding', { timeout: 30000 }, step('vp8-ratchet', async (t) => {
  assert.ok(A && B, 'needs the previous test');
  const s0 = await B.stats();
  await A.ratchetKey();
  const s1 = await B.waitFor((s) => s.worker.ratchetRecoveries.video >= 1 && s.worker.ratchetRecoveries.audio >= 1, 10000, 'ratchet recovery at B');
  await sleep(2000);
  const s2 = await B.stats();
  const decoded = s2.video.framesDecoded - s1.video.framesDecoded;
  const failures = s2.worker.decryptFailures.video - s0.worker.decryptFailures.video;
  assert.ok(decoded >= 20, `B decoded ${decoded} frames in 2 s after the ratchet`);
  // Frames sealed with the old key that arrive after B moved on are dropped; there are few.
  assert.ok(failures <= 5, `video decrypt failures around the ratchet: ${failures}`);
  t.diagnostic(`recoveries ${JSON.stringify(s2.worker.ratchetRecoveries)}, failures ${failures}, decoded ${decoded} in 2 s after`);
}));

test('vp8: C with a wrong key and D with no key decode ≤ 2 frames', { timeout: 60000 }, step('vp8-wrong-key', async (t) => {
  assert.ok(A, 'needs the publisher from the first test');
  // Subscribers without the key flood key-frame requests: they join after the timing runs.
  const C = await join_({ display: 'C-wrong-key', keyHex: randomBytes(32).toString('hex'), publish: false });
  const D = await join_({ display: 'D-no-key', keyHex: null, publish: false });
  for (const P of [C, D]) {
    await P.waitFor((s) => s.worker.decryptFailures.video >= 30, 20000, 'ciphertext video frames arriving');
  }
  for (const P of [C, D]) {
    const s = await P.stats();
    const detail = `${P.display}: ${JSON.stringify({ video: s.video, worker: s.worker })}`;
    assert.ok(s.video.framesDecoded <= 2, `decoded ${s.video.framesDecoded}: ${detail}`);
    assert.equal(s.worker.decrypted.video, 0, detail);
    assert.equal(s.worker.decrypted.audio, 0, detail);
    assert.ok(s.worker.decryptFailures.audio > 0, detail);
    t.diagnostic(`${P.display}: decoded ${s.video.framesDecoded}, failed to open ${s.worker.decryptFailures.video} video / ${s.worker.decryptFailures.audio} audio frames`);
  }
  await leave(C);
  await leave(D);
}));

test('vp8: a plain browser (no transform) gets ciphertext: almost nothing decodes', { timeout: 60000 }, step('vp8-plain', async (t) => {
  assert.ok(A, 'needs the publisher from the first test');
  const E = await join_({ display: 'E-plain', transform: false, publish: false });
  await E.waitFor((x) => x.video.framesReceived >= 40, 20000, '40 received video frames');
  await sleep(2000);
  const s = await E.stats();
  const m = await E.motion(5, 300);
  const detail = JSON.stringify({ video: s.video, presented: s.presentedFrames, motion: m });
  // libvpx accepts the odd ciphertext key frame (its header bytes are clear) and shows
  // noise, so a still picture is no criterion; the decode ratio is.
  assert.ok(s.video.framesDecoded <= 0.1 * s.video.framesReceived, `decoded too many: ${detail}`);
  assert.ok(s.presentedFrames <= 0.1 * s.video.framesReceived, `presented too many: ${detail}`);
  t.diagnostic(`received ${s.video.framesReceived}, decoded ${s.video.framesDecoded} (${s.video.keyFramesDecoded} key), motion samples ${JSON.stringify(m.diffs.map((d) => +d.toFixed(1)))}`);
  await leave(E);
}));

test('h264 (NAL-aware layout): B with the key decodes ≥ 50 frames in 5 s with motion', { timeout: 60000 }, step('h264-with-key', async (t) => {
  const caps = await browserCapabilities(browser, server.url);
  if (!caps.h264) {
    t.skip('Chromium here offers no H.264 encoder');
    return;
  }
  // The VP8 participants leave so that B subscribes to the H.264 publisher only.
  for (const p of [...open]) await leave(p);
  A = B = null;
  const { A: A2, B: B2 } = await publisherAndSubscriber('h264');
  const r = await assertDecodesWithKey(A2, B2, 'h264');
  t.diagnostic(`decoded ${r.decoded} frames in ${r.seconds.toFixed(1)} s; motion ${r.motion.map((d) => d.toFixed(1)).join(',')}; `
    + `escape bytes inserted by the sender so far: ${(await A2.stats()).worker.h264EscapeBytes}`);
  const C = await join_({ display: 'C-h264-wrong-key', keyHex: randomBytes(32).toString('hex'), publish: false, codec: 'h264' });
  await C.waitFor((s) => s.worker.decryptFailures.video >= 30, 20000, 'ciphertext video frames arriving');
  const sc = await C.stats();
  assert.ok(sc.video.framesDecoded <= 2, `wrong key decoded ${sc.video.framesDecoded}`);
  assert.equal(sc.worker.decrypted.video, 0);
}));
