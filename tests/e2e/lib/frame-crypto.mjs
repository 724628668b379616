// Per-frame end-to-end encryption as lib-jitsi-meet does it ("jitsi" format),
// plus the NAL-aware H.264 layout LiveKit's frame cryptor uses ("h264").
// Written from the format description of the `jitsi` frame format (firmware/frame/src/jitsi.rs, docs/ARCHITECTURE.md).
//
// One ES module with no imports, so that it runs unchanged in the browser's
// encoded-transform worker and in Node 20 (globalThis.crypto.subtle), where
// it is unit-tested and cross-checked against the Rust `cloakroom frame` CLI.
//
// Wire layout (both formats):
//   clear[N] ‖ AES-128-GCM(ciphertext ‖ tag16) ‖ IV(12) ‖ 0x0C ‖ key_index
// jitsi: N = 10 (VP8 key frame), 3 (VP8 delta frame), 1 (audio: Opus TOC).
// h264:  N = every NAL before the first slice + slice NAL header + 1 byte;
//        everything after the clear part is escaped with emulation prevention.
// AAD = the clear bytes. IV = BE32(SSRC) ‖ BE32(RTP timestamp) ‖ BE32(count mod 0xFFFF).

// Node 18 has no global WebCrypto; the dynamic import only runs there, never in the browser.
const subtle = globalThis.crypto?.subtle ?? (await import('node:crypto')).webcrypto.subtle;
const utf8 = new TextEncoder();

export const IV_LENGTH = 12;
export const TAG_LENGTH = 16;
export const KEY_RING_SIZE = 16;
export const RATCHET_WINDOW = 8;
export const SEND_COUNT_MODULUS = 0xffff;

const ENCRYPTION_SALT = utf8.encode('JFrameEncryptionKey');
const RATCHET_SALT = utf8.encode('JFrameRatchetKey');
const EMPTY = new Uint8Array(0);

/** Frame kinds the jitsi format knows. */
export const Kind = Object.freeze({
  VP8_KEY: 'vp8-key',
  VP8_DELTA: 'vp8-delta',
  OPUS: 'opus',
  H264: 'h264',
});

const JITSI_CLEAR_BYTES = { 'vp8-key': 10, 'vp8-delta': 3, opus: 1 };

// ---------------------------------------------------------------- keys

async function hkdf(material, salt, bits) {
  const base = await subtle.importKey('raw', material, 'HKDF', false, ['deriveBits']);
  const out = await subtle.deriveBits({ name: 'HKDF', hash: 'SHA-256', salt, info: EMPTY }, base, bits);
  return new Uint8Array(out);
}

/** 32 bytes of key material → the AES-128-GCM CryptoKey used for frames. */
export async function deriveFrameKey(material) {
  checkMaterial(material);
  const raw = await hkdf(material, ENCRYPTION_SALT, 128);
  return subtle.importKey('raw', raw, { name: 'AES-GCM' }, false, ['encrypt', 'decrypt']);
}

/** One ratchet step: new 32-byte material from the old. */
export async function ratchetMaterial(material) {
  checkMaterial(material);
  return hkdf(material, RATCHET_SALT, 256);
}

/** Material after `steps` ratchets. */
export async function ratchetMaterialTimes(material, steps) {
  let m = material;
  for (let i = 0; i < steps; i++) m = await ratchetMaterial(m);
  return m;
}

function checkMaterial(material) {
  if (!(material instanceof Uint8Array) || material.length !== 32) {
    throw new TypeError('key material must be 32 bytes');
  }
}

/** A key slot: the material (kept so the receiver can ratchet) and its derived key. */
export async function makeKeySlot(material) {
  return { material: Uint8Array.from(material), key: await deriveFrameKey(material) };
}

/** 16 key slots, indexed by key_index mod 16. */
export class KeyRing {
  constructor() {
    this.slots = new Array(KEY_RING_SIZE).fill(null);
    this.currentIndex = 0;
  }

  /** Install material at `index` and make it the one used for sending. */
  async setMaterial(index, material) {
    const i = index % KEY_RING_SIZE;
    this.slots[i] = await makeKeySlot(material);
    this.currentIndex = i;
  }

  slot(index) {
    return this.slots[index % KEY_RING_SIZE];
  }
}

// ---------------------------------------------------------------- sealing

/** IV = BE32(ssrc) ‖ BE32(timestamp) ‖ BE32(count mod 0xFFFF). */
export function makeIv(ssrc, timestamp, count) {
  const iv = new Uint8Array(IV_LENGTH);
  const v = new DataView(iv.buffer);
  v.setUint32(0, ssrc >>> 0);
  v.setUint32(4, timestamp >>> 0);
  v.setUint32(8, count % SEND_COUNT_MODULUS);
  return iv;
}

/** How many leading bytes stay clear (and are the AAD) for this frame. */
export function clearByteCount(kind, data) {
  if (kind === Kind.H264) return h264ClearByteCount(data);
  const n = JITSI_CLEAR_BYTES[kind];
  if (n === undefined) throw new TypeError(`unknown frame kind ${kind}`);
  return Math.min(n, data.length);
}

/**
 * Encrypt one frame.
 * @param {{key: CryptoKey, keyIndex: number, kind: string, ssrc: number,
 *          timestamp: number, count: number, plaintext: Uint8Array}} p
 * @returns {Promise<Uint8Array>} the sealed frame
 */
export async function sealFrame({ key, keyIndex, kind, ssrc, timestamp, count, plaintext }) {
  const n = clearByteCount(kind, plaintext);
  const clear = plaintext.subarray(0, n);
  const iv = makeIv(ssrc, timestamp, count);
  const ct = new Uint8Array(
    await subtle.encrypt({ name: 'AES-GCM', iv, additionalData: clear, tagLength: 128 }, key, plaintext.subarray(n)),
  );
  let tail = new Uint8Array(ct.length + IV_LENGTH + 2);
  tail.set(ct, 0);
  tail.set(iv, ct.length);
  tail[ct.length + IV_LENGTH] = IV_LENGTH;
  tail[ct.length + IV_LENGTH + 1] = keyIndex & 0xff;
  if (kind === Kind.H264) tail = escapeEmulation(tail);
  const out = new Uint8Array(n + tail.length);
  out.set(clear, 0);
  out.set(tail, n);
  return out;
}

/** Split a sealed frame into its parts; throws on a malformed frame. */
export function parseSealed(kind, data) {
  const n = clearByteCount(kind, data);
  const clear = data.subarray(0, n);
  const tail = kind === Kind.H264 ? unescapeEmulation(data.subarray(n)) : data.subarray(n);
  if (tail.length < TAG_LENGTH + IV_LENGTH + 2) throw new FrameError('frame too short');
  const ivLength = tail[tail.length - 2];
  if (ivLength !== IV_LENGTH) throw new FrameError(`unexpected IV length ${ivLength}`);
  const keyIndex = tail[tail.length - 1];
  const iv = tail.subarray(tail.length - 2 - IV_LENGTH, tail.length - 2);
  const ciphertext = tail.subarray(0, tail.length - 2 - IV_LENGTH);
  return { clear, ciphertext, iv, keyIndex };
}

/** Decrypt one frame with one key. Throws (FrameError) if it does not authenticate. */
export async function openFrameWithKey(key, kind, data) {
  const { clear, ciphertext, iv } = parseSealed(kind, data);
  let pt;
  try {
    pt = await subtle.decrypt({ name: 'AES-GCM', iv, additionalData: clear, tagLength: 128 }, key, ciphertext);
  } catch {
    throw new FrameError('authentication failed');
  }
  const out = new Uint8Array(clear.length + pt.byteLength);
  out.set(clear, 0);
  out.set(new Uint8Array(pt), clear.length);
  return out;
}

export class FrameError extends Error {
  constructor(message) {
    super(message);
    this.name = 'FrameError';
  }
}

/** Sender side: one KeyRing, a send counter per SSRC starting at a random value below 0xFFFF. */
export class FrameEncryptor {
  constructor(keyRing, { random = () => Math.floor(Math.random() * SEND_COUNT_MODULUS) } = {}) {
    this.keyRing = keyRing;
    this.random = random;
    this.sendCounts = new Map();
  }

  /** Returns the sealed frame, or null when no key is installed yet. */
  async seal(kind, ssrc, timestamp, plaintext) {
    const index = this.keyRing.currentIndex;
    const slot = this.keyRing.slot(index);
    if (!slot) return null;
    let count = this.sendCounts.get(ssrc);
    if (count === undefined) count = this.random();
    this.sendCounts.set(ssrc, (count + 1) % SEND_COUNT_MODULUS);
    return sealFrame({ key: slot.key, keyIndex: index, kind, ssrc, timestamp, count, plaintext });
  }
}

/**
 * Receiver side: picks the slot by the frame's key_index; on failure ratchets
 * the slot forward up to RATCHET_WINDOW times, keeping the ratcheted key if
 * it works and restoring the original if none does.
 */
export class FrameDecryptor {
  constructor(keyRing) {
    this.keyRing = keyRing;
  }

  /** @returns {Promise<{plaintext: Uint8Array, ratchets: number}>}; throws FrameError. */
  async open(kind, data) {
    const { keyIndex } = parseSealed(kind, data);
    const slot = this.keyRing.slot(keyIndex);
    if (!slot) throw new FrameError(`no key at index ${keyIndex}`);
    try {
      return { plaintext: await openFrameWithKey(slot.key, kind, data), ratchets: 0 };
    } catch (e) {
      if (!(e instanceof FrameError)) throw e;
    }
    let material = slot.material;
    for (let step = 1; step <= RATCHET_WINDOW; step++) {
      material = await ratchetMaterial(material);
      const candidate = await makeKeySlot(material);
      try {
        const plaintext = await openFrameWithKey(candidate.key, kind, data);
        this.keyRing.slots[keyIndex % KEY_RING_SIZE] = candidate;
        return { plaintext, ratchets: step };
      } catch (e) {
        if (!(e instanceof FrameError)) throw e;
      }
    }
    throw new FrameError('authentication failed after ratcheting');
  }
}

// ---------------------------------------------------------------- H.264

/** Positions of NAL headers (the byte after each 00 00 01 start code). */
export function findNalUnits(data) {
  const starts = [];
  for (let i = 0; i + 2 < data.length; i++) {
    if (data[i] === 0 && data[i + 1] === 0 && data[i + 2] === 1) {
      starts.push(i + 3);
      i += 2;
    }
  }
  return starts;
}

/** Clear bytes of an H.264 Annex-B frame: up to and including the first slice's header + 1 byte. */
export function h264ClearByteCount(data) {
  for (const pos of findNalUnits(data)) {
    const type = data[pos] & 0x1f;
    if (type === 1 || type === 5) return Math.min(pos + 2, data.length);
  }
  throw new FrameError('no H.264 slice NAL unit in frame');
}

/** Insert 0x03 after 00 00 when the next byte is ≤ 3. */
export function escapeEmulation(data) {
  const out = [];
  let zeros = 0;
  for (const b of data) {
    if (zeros >= 2 && b <= 3) {
      out.push(3);
      zeros = 0;
    }
    out.push(b);
    zeros = b === 0 ? zeros + 1 : 0;
  }
  return Uint8Array.from(out);
}

/** Remove the 0x03 that follows 00 00. */
export function unescapeEmulation(data) {
  const out = [];
  for (let i = 0; i < data.length; ) {
    if (data.length - i >= 3 && data[i] === 0 && data[i + 1] === 0 && data[i + 2] === 3) {
      out.push(0, 0);
      i += 3;
    } else {
      out.push(data[i++]);
    }
  }
  return Uint8Array.from(out);
}

// ---------------------------------------------------------------- helpers

export function hexToBytes(hex) {
  if (typeof hex !== 'string' || hex.length % 2 !== 0 || /[^0-9a-fA-F]/.test(hex)) {
    throw new TypeError('not a hex string');
  }
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.substr(i * 2, 2), 16);
  return out;
}

export function bytesToHex(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}
