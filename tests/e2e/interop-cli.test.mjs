// Cross-check of the browser's frame format (lib/frame-crypto.mjs) against the
// Rust implementation through `cloakroom frame seal|open`:
// JS seal → CLI open, CLI seal → JS open, and JS seal == CLI seal byte for byte.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  Kind, deriveFrameKey, ratchetMaterialTimes, sealFrame, openFrameWithKey, hexToBytes, bytesToHex,
} from './lib/frame-crypto.mjs';

const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const BIN = process.env.CLOAKROOM_BIN || join(REPO, 'target', 'debug', 'cloakroom');

function cli(args) {
  if (!existsSync(BIN)) {
    throw new Error(`cloakroom binary missing at ${BIN}: build it with \`cargo build -p cloakroom\` (or set CLOAKROOM_BIN)`);
  }
  const r = spawnSync(BIN, args, { encoding: 'utf8', timeout: 10000 });
  if (r.error) throw r.error;
  return { code: r.status, out: r.stdout.trim(), err: r.stderr.trim() };
}

const MATERIAL = 'a1b2c3d4e5f60718293a4b5c6d7e8f90'.repeat(2);
const MATERIAL2 = '00112233445566778899aabbccddeeff'.repeat(2);

function bytes(n, seed) {
  let x = seed >>> 0 || 1;
  return Uint8Array.from({ length: n }, () => { x = (x * 1103515245 + 12345) >>> 0; return x >>> 24; });
}

/** Frame format flags for the CLI: --format jitsi --kind K, or --format h264. */
function formatArgs(kind) {
  return kind === Kind.H264 ? ['--format', 'h264'] : ['--format', 'jitsi', '--kind', kind];
}

async function jsSeal(c) {
  const key = await deriveFrameKey(await ratchetMaterialTimes(hexToBytes(c.material), c.ratchets));
  return sealFrame({ key, keyIndex: c.keyIndex, kind: c.kind, ssrc: c.ssrc, timestamp: c.timestamp, count: c.count, plaintext: c.plaintext });
}

async function jsOpen(c, sealed) {
  const key = await deriveFrameKey(await ratchetMaterialTimes(hexToBytes(c.material), c.ratchets));
  return openFrameWithKey(key, c.kind, sealed);
}

function cliSeal(c) {
  return cli(['frame', 'seal', ...formatArgs(c.kind), '--material', c.material, '--ratchets', String(c.ratchets),
    '--key-index', String(c.keyIndex), '--ssrc', String(c.ssrc), '--timestamp', String(c.timestamp),
    '--count', String(c.count), '--plaintext', bytesToHex(c.plaintext)]);
}

function cliOpen(c, sealedHex, material = c.material) {
  return cli(['frame', 'open', ...formatArgs(c.kind), '--material', material, '--ratchets', String(c.ratchets),
    '--ciphertext', sealedHex]);
}

// H.264 access units (Annex B): SPS+PPS+IDR, and a P slice; payloads without start codes.
const sps = [0, 0, 0, 1, 0x67, 0x42, 0xc0, 0x1f, 0xda, 0x01, 0x40, 0x16, 0xec, 0x04, 0x40];
const pps = [0, 0, 0, 1, 0x68, 0xce, 0x3c, 0x80];
const noStartCodes = (b) => b.map((v, i) => (v === 0 && i > 0 && b[i - 1] === 0 ? 0x11 : v));
const idrFrame = Uint8Array.from([...sps, ...pps, 0, 0, 1, 0x65, 0x88, ...noStartCodes([...bytes(1500, 9)])]);
const pFrame = Uint8Array.from([0, 0, 0, 1, 0x41, 0x9a, ...noStartCodes([...bytes(400, 10)])]);

const cases = [];
{
  const kinds = [[Kind.VP8_KEY, 1200], [Kind.VP8_DELTA, 300], [Kind.OPUS, 80]];
  const variants = [
    { count: 0, ratchets: 0, keyIndex: 0, ssrc: 1, timestamp: 0 },
    { count: 1234, ratchets: 1, keyIndex: 5, ssrc: 0xdeadbeef, timestamp: 0xffffffff },
    { count: 0xfffe, ratchets: 0, keyIndex: 15, ssrc: 42, timestamp: 90000 },
    { count: 0xffff, ratchets: 3, keyIndex: 7, ssrc: 2166136261, timestamp: 123456789 }, // IV count 0
    { count: 70000, ratchets: 8, keyIndex: 1, ssrc: 7, timestamp: 3000 }, // IV count 4465
  ];
  let seed = 1;
  for (const [kind, len] of kinds) {
    for (const v of variants) cases.push({ kind, material: MATERIAL, plaintext: bytes(len, seed++), ...v });
  }
  cases.push({ kind: Kind.H264, material: MATERIAL, plaintext: idrFrame, count: 9, ratchets: 0, keyIndex: 0, ssrc: 5, timestamp: 1 });
  cases.push({ kind: Kind.H264, material: MATERIAL2, plaintext: pFrame, count: 0xffff, ratchets: 2, keyIndex: 3, ssrc: 6, timestamp: 2 });
}

const label = (c) => `${c.kind} len=${c.plaintext.length} count=${c.count} ratchets=${c.ratchets} key_index=${c.keyIndex}`;

test('the cloakroom binary is there', () => {
  assert.ok(existsSync(BIN), `cloakroom binary missing at ${BIN}: build it with \`cargo build -p cloakroom\` (or set CLOAKROOM_BIN)`);
});

test('JS seal equals CLI seal byte for byte', async () => {
  for (const c of cases) {
    const js = bytesToHex(await jsSeal(c));
    const r = cliSeal(c);
    assert.equal(r.code, 0, `${label(c)}: cli seal failed: ${r.err}`);
    assert.equal(r.out, js, label(c));
    if (c.kind === Kind.H264) {
      // Small SSRC/timestamp/count put 00 00 0x into the IV, so escaping is exercised.
      assert.ok(js.length / 2 > c.plaintext.length + 30, `${label(c)}: expected emulation-prevention bytes`);
    }
  }
});

test('JS seal → CLI open gives the plaintext', async () => {
  for (const c of cases) {
    const r = cliOpen(c, bytesToHex(await jsSeal(c)));
    assert.equal(r.code, 0, `${label(c)}: cli open failed: ${r.err}`);
    assert.equal(r.out, bytesToHex(c.plaintext), label(c));
  }
});

test('CLI seal → JS open gives the plaintext', async () => {
  for (const c of cases) {
    const r = cliSeal(c);
    assert.equal(r.code, 0, `${label(c)}: cli seal failed: ${r.err}`);
    const opened = await jsOpen(c, hexToBytes(r.out));
    assert.equal(bytesToHex(opened), bytesToHex(c.plaintext), label(c));
  }
});

test('CLI open rejects a tampered frame and a wrong key with exit 1 and a message', async () => {
  const c = cases[1];
  const sealed = await jsSeal(c);
  for (const pos of [0, 20, sealed.length - 5]) {
    const bad = Uint8Array.from(sealed);
    bad[pos] ^= 0x80;
    const r = cliOpen(c, bytesToHex(bad));
    assert.equal(r.code, 1, `tampered byte ${pos} accepted: ${r.out}`);
    assert.ok(r.err.length > 0, 'an error message');
  }
  const r = cliOpen(c, bytesToHex(sealed), MATERIAL2);
  assert.equal(r.code, 1, `wrong key accepted: ${r.out}`);
  assert.ok(r.err.length > 0, 'an error message');
});

test('short frames: JS and CLI agree (both seal to the same bytes, or both refuse)', async () => {
  for (const [kind, len] of [[Kind.OPUS, 1], [Kind.OPUS, 2], [Kind.VP8_DELTA, 3], [Kind.VP8_KEY, 10], [Kind.VP8_KEY, 11]]) {
    const c = { kind, material: MATERIAL, plaintext: bytes(len, 77), count: 3, ratchets: 0, keyIndex: 2, ssrc: 9, timestamp: 9 };
    const js = await jsSeal(c).then(bytesToHex, (e) => ({ refused: e.message }));
    const r = cliSeal(c);
    if (typeof js === 'string') {
      assert.equal(r.code, 0, `${label(c)}: JS seals, CLI refuses: ${r.err}`);
      assert.equal(r.out, js, label(c));
      const o = cliOpen(c, js);
      assert.equal(o.out, bytesToHex(c.plaintext), label(c));
    } else {
      assert.notEqual(r.code, 0, `${label(c)}: CLI seals, JS refuses (${js.refused})`);
    }
  }
});
