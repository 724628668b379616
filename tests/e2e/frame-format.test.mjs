// Unit tests of lib/frame-crypto.mjs in Node (the same module the browser worker runs).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  Kind,
  KeyRing,
  FrameEncryptor,
  FrameDecryptor,
  FrameError,
  deriveFrameKey,
  ratchetMaterial,
  sealFrame,
  openFrameWithKey,
  parseSealed,
  makeIv,
  escapeEmulation,
  unescapeEmulation,
  findNalUnits,
  h264ClearByteCount,
  hexToBytes,
  bytesToHex,
} from './lib/frame-crypto.mjs';

const material = (seed) => Uint8Array.from({ length: 32 }, (_, i) => (i * 7 + seed) & 0xff);
const payload = (n, seed = 1) => Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed) & 0xff);

test('round trip for every kind keeps the clear prefix and the trailer layout', async () => {
  const key = await deriveFrameKey(material(1));
  for (const [kind, clear] of [[Kind.VP8_KEY, 10], [Kind.VP8_DELTA, 3], [Kind.OPUS, 1]]) {
    const plaintext = payload(200);
    const sealed = await sealFrame({ key, keyIndex: 5, kind, ssrc: 0x11223344, timestamp: 0xdeadbeef, count: 70000, plaintext });
    assert.equal(sealed.length, plaintext.length + 16 + 12 + 2, kind);
    assert.deepEqual(sealed.subarray(0, clear), plaintext.subarray(0, clear), `${kind} clear bytes`);
    assert.notDeepEqual(sealed.subarray(clear, plaintext.length), plaintext.subarray(clear), `${kind} body encrypted`);
    assert.equal(sealed[sealed.length - 2], 0x0c);
    assert.equal(sealed[sealed.length - 1], 5);
    // IV = BE32 ssrc ‖ BE32 ts ‖ BE32 (70000 mod 0xFFFF = 4465)
    assert.equal(bytesToHex(sealed.subarray(sealed.length - 14, sealed.length - 2)), '11223344deadbeef' + '00001171');
    const opened = await openFrameWithKey(key, kind, sealed);
    assert.deepEqual(opened, plaintext);
  }
});

test('IV uses the send count modulo 0xFFFF', () => {
  assert.equal(bytesToHex(makeIv(1, 2, 0xffff)), '000000010000000200000000');
  assert.equal(bytesToHex(makeIv(0xffffffff, 0, 0xfffe)), 'ffffffff000000000000fffe');
});

test('a tampered byte anywhere (clear, ciphertext, tag, IV) is rejected', async () => {
  const key = await deriveFrameKey(material(2));
  const plaintext = payload(64);
  const sealed = await sealFrame({ key, keyIndex: 0, kind: Kind.VP8_KEY, ssrc: 7, timestamp: 9, count: 3, plaintext });
  for (const pos of [0, 9, 10, 40, sealed.length - 20, sealed.length - 3]) {
    const bad = Uint8Array.from(sealed);
    bad[pos] ^= 0x01;
    await assert.rejects(openFrameWithKey(key, Kind.VP8_KEY, bad), FrameError, `byte ${pos}`);
  }
});

test('a wrong key fails, also through the decryptor with its ratchet window', async () => {
  const key = await deriveFrameKey(material(3));
  const sealed = await sealFrame({ key, keyIndex: 1, kind: Kind.OPUS, ssrc: 1, timestamp: 2, count: 3, plaintext: payload(40) });
  await assert.rejects(openFrameWithKey(await deriveFrameKey(material(4)), Kind.OPUS, sealed), FrameError);
  const ring = new KeyRing();
  await ring.setMaterial(1, material(4));
  const before = ring.slot(1);
  await assert.rejects(new FrameDecryptor(ring).open(Kind.OPUS, sealed), FrameError);
  assert.equal(ring.slot(1), before, 'original key restored after a failed ratchet window');
});

test('receiver ratchets forward (up to 8) to a sender that ratcheted, and keeps the new key', async () => {
  const m0 = material(5);
  let m = m0;
  for (let i = 0; i < 8; i++) m = await ratchetMaterial(m);
  assert.notDeepEqual(m, m0);
  const senderRing = new KeyRing();
  await senderRing.setMaterial(17, m); // index 17 → slot 1, trailer carries 1
  const sender = new FrameEncryptor(senderRing, { random: () => 0xfffe });
  const f1 = await sender.seal(Kind.VP8_DELTA, 42, 1000, payload(90));
  const f2 = await sender.seal(Kind.VP8_DELTA, 42, 1100, payload(90, 2));
  assert.equal(parseSealed(Kind.VP8_DELTA, f1).keyIndex, 1);
  assert.equal(bytesToHex(parseSealed(Kind.VP8_DELTA, f1).iv).slice(16), '0000fffe');
  assert.equal(bytesToHex(parseSealed(Kind.VP8_DELTA, f2).iv).slice(16), '00000000', 'count wraps at 0xFFFF');

  const ring = new KeyRing();
  await ring.setMaterial(1, m0);
  const rx = new FrameDecryptor(ring);
  const r1 = await rx.open(Kind.VP8_DELTA, f1);
  assert.equal(r1.ratchets, 8);
  assert.deepEqual(r1.plaintext, payload(90));
  assert.deepEqual(ring.slot(1).material, m, 'ratcheted material kept');
  const r2 = await rx.open(Kind.VP8_DELTA, f2);
  assert.equal(r2.ratchets, 0, 'second frame opens with the kept key');

  // Nine ratchets is beyond the window.
  const ring9 = new KeyRing();
  await ring9.setMaterial(1, m0);
  let m9 = m;
  m9 = await ratchetMaterial(m9);
  const s9 = new KeyRing();
  await s9.setMaterial(1, m9);
  const f9 = await new FrameEncryptor(s9).seal(Kind.OPUS, 1, 1, payload(20));
  await assert.rejects(new FrameDecryptor(ring9).open(Kind.OPUS, f9), FrameError);
});

test('per-SSRC send counters start at a random value below 0xFFFF and increment', async () => {
  const ring = new KeyRing();
  await ring.setMaterial(0, material(6));
  const starts = [100, 0xfffe];
  const enc = new FrameEncryptor(ring, { random: () => starts.shift() });
  const got = [];
  for (const ssrc of [1, 2, 1, 2, 1]) {
    const f = await enc.seal(Kind.OPUS, ssrc, 0, payload(10));
    const iv = parseSealed(Kind.OPUS, f).iv;
    got.push([ssrc, new DataView(iv.buffer, iv.byteOffset, 12).getUint32(8)]);
  }
  assert.deepEqual(got, [[1, 100], [2, 0xfffe], [1, 101], [2, 0], [1, 102]]);
  const dflt = new FrameEncryptor(ring);
  const f = await dflt.seal(Kind.OPUS, 5, 0, payload(10));
  const iv = parseSealed(Kind.OPUS, f).iv;
  assert.ok(new DataView(iv.buffer, iv.byteOffset, 12).getUint32(8) < 0xffff);
});

test('emulation prevention escaping round trips and leaves no start code', () => {
  const cases = [
    [0, 0, 0], [0, 0, 1], [0, 0, 2], [0, 0, 3], [0, 0, 4], [0, 0, 0, 0, 0, 0], [1, 0, 0], [0, 0],
    Array.from({ length: 4096 }, (_, i) => ((i * 2654435761) >>> 13) % 5 === 0 ? 1 : 0),
  ];
  for (const c of cases) {
    const raw = Uint8Array.from(c);
    const esc = escapeEmulation(raw);
    for (let i = 0; i + 2 < esc.length; i++) {
      assert.ok(!(esc[i] === 0 && esc[i + 1] === 0 && esc[i + 2] <= 2), `no 00 00 0x (x≤2) in ${bytesToHex(esc)}`);
    }
    assert.deepEqual(unescapeEmulation(esc), raw, bytesToHex(raw).slice(0, 40));
  }
  assert.equal(bytesToHex(escapeEmulation(Uint8Array.from([0, 0, 1, 0, 0, 0]))), '000003010000' + '0300');
});

test('h264 layout: NALs before the first slice stay clear, the rest is escaped ciphertext', async () => {
  const sps = [0, 0, 0, 1, 0x67, 0x42, 0xc0, 0x1f, 0xda, 0x01];
  const pps = [0, 0, 0, 1, 0x68, 0xce, 0x3c, 0x80];
  const idr = [0, 0, 1, 0x65, 0x88, ...Array.from({ length: 3000 }, (_, i) => (i % 7 === 0 ? 0 : (i & 0xff) | 1))];
  const frame = Uint8Array.from([...sps, ...pps, ...idr]);
  assert.deepEqual(findNalUnits(frame), [4, 14, 21]);
  const clear = h264ClearByteCount(frame);
  assert.equal(clear, sps.length + pps.length + 3 + 2);

  const key = await deriveFrameKey(material(7));
  // Try several timestamps so that some ciphertexts need escaping.
  let escapedSeen = false;
  for (let ts = 0; ts < 40; ts++) {
    const sealed = await sealFrame({ key, keyIndex: 3, kind: Kind.H264, ssrc: 99, timestamp: ts, count: ts, plaintext: frame });
    assert.deepEqual(sealed.subarray(0, clear), frame.subarray(0, clear));
    const tail = sealed.subarray(clear);
    for (let i = 0; i + 2 < tail.length; i++) {
      assert.ok(!(tail[i] === 0 && tail[i + 1] === 0 && tail[i + 2] <= 2), 'escaped tail has no start code');
    }
    if (tail.length !== frame.length - clear + 30) escapedSeen = true;
    assert.equal(parseSealed(Kind.H264, sealed).keyIndex, 3);
    assert.deepEqual(await openFrameWithKey(key, Kind.H264, sealed), frame);
  }
  assert.ok(escapedSeen, 'at least one sealed frame needed escaping');

  // A delta (non-IDR) slice alone.
  const p = Uint8Array.from([0, 0, 0, 1, 0x41, 0x9a, ...payload(500)]);
  const sp = await sealFrame({ key, keyIndex: 0, kind: Kind.H264, ssrc: 1, timestamp: 1, count: 1, plaintext: p });
  assert.deepEqual(sp.subarray(0, 6), p.subarray(0, 6));
  assert.deepEqual(await openFrameWithKey(key, Kind.H264, sp), p);
  assert.throws(() => h264ClearByteCount(Uint8Array.from([0, 0, 1, 0x67, 1, 2])), FrameError);
});

test('hex helpers', () => {
  assert.equal(bytesToHex(hexToBytes('00ff10Ab')), '00ff10ab');
  assert.throws(() => hexToBytes('abc'));
});
