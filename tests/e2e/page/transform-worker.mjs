// Encoded-transform worker: seals outgoing frames and opens incoming ones with
// the frame format in lib/frame-crypto.mjs. One worker per page serves every
// sender and receiver transform of that page; the key ring is shared.
import { Kind, KeyRing, FrameEncryptor, FrameDecryptor, FrameError, ratchetMaterial } from '../lib/frame-crypto.mjs';

// The send ring, and one ring per receive transform: a receiver that ratchets
// forward to follow one sender must not move our own send key or other streams.
const ring = new KeyRing();
const receiveRings = [];
const installed = new Map(); // key index → material, to seed receive rings made later
let haveKey = false;
let lastUnopenedVideo = null;
const encryptor = new FrameEncryptor(ring);

const zero = () => ({ audio: 0, video: 0 });
const counters = {
  encrypted: zero(),
  encryptDropped: zero(), // no key yet or unsealable frame: never sent in clear
  decrypted: zero(),
  decryptFailures: zero(),
  ratchetRecoveries: zero(),
  passedEmpty: zero(),
  h264EscapeBytes: 0, // emulation-prevention bytes inserted into sealed H.264 frames
  bytesIn: zero(),
  transforms: [],
  lastError: null,
};

self.onmessage = async (event) => {
  const msg = event.data;
  if (msg.type === 'setKey') {
    const material = new Uint8Array(msg.material);
    installed.set(msg.index, material);
    for (const r of [ring, ...receiveRings]) await r.setMaterial(msg.index, material);
    haveKey = true;
    self.postMessage({ type: 'keySet', id: msg.id });
  } else if (msg.type === 'ratchet') {
    // Sender-side ratchet of the current key (what a participant does when someone joins).
    const slot = ring.slot(ring.currentIndex);
    if (slot) await ring.setMaterial(ring.currentIndex, await ratchetMaterial(slot.material));
    self.postMessage({ type: 'ratcheted', id: msg.id });
  } else if (msg.type === 'cipherSample') {
    // The bytes of the latest video frame that did not open (for the demo's "rubbish" view).
    self.postMessage({ type: 'cipherSample', id: msg.id, bytes: lastUnopenedVideo });
  } else if (msg.type === 'stats') {
    self.postMessage({ type: 'stats', id: msg.id, counters: { ...counters, haveKey } });
  }
};

self.onrtctransform = (event) => {
  const transformer = event.transformer;
  const { operation, kind, codec } = transformer.options;
  counters.transforms.push(`${operation}:${kind}:${codec}`);
  let transform = encryptFrame;
  if (operation !== 'encrypt') {
    const rxRing = new KeyRing();
    receiveRings.push(rxRing);
    const ready = Promise.all([...installed].map(([index, material]) => rxRing.setMaterial(index, material)));
    const decryptor = new FrameDecryptor(rxRing);
    transform = async (frame, controller, k, c) => { await ready; return decryptFrame(decryptor, frame, controller, k, c); };
  }
  transformer.readable
    .pipeThrough(new TransformStream({ transform: (frame, controller) => transform(frame, controller, kind, codec) }))
    .pipeTo(transformer.writable)
    .catch((e) => { counters.lastError = String(e); });
};

function frameKind(frame, kind, codec) {
  if (kind === 'audio') return Kind.OPUS;
  if (codec === 'h264') return Kind.H264;
  if (frame.type === 'key') return Kind.VP8_KEY;
  if (frame.type === 'delta') return Kind.VP8_DELTA;
  return null; // 'empty'
}

function rtpInfo(frame) {
  const md = frame.getMetadata();
  return { ssrc: md.synchronizationSource, timestamp: md.rtpTimestamp ?? frame.timestamp };
}

async function encryptFrame(frame, controller, kind, codec) {
  const data = new Uint8Array(frame.data);
  const fk = frameKind(frame, kind, codec);
  if (data.length === 0 || fk === null) {
    counters.passedEmpty[kind]++;
    controller.enqueue(frame);
    return;
  }
  if (!haveKey) { counters.encryptDropped[kind]++; return; }
  const { ssrc, timestamp } = rtpInfo(frame);
  try {
    const sealed = await encryptor.seal(fk, ssrc, timestamp, data);
    if (fk === Kind.H264) counters.h264EscapeBytes += sealed.length - (data.length + 16 + 12 + 2);
    frame.data = sealed.buffer;
    counters.encrypted[kind]++;
    controller.enqueue(frame);
  } catch (e) {
    counters.encryptDropped[kind]++;
    counters.lastError = String(e);
  }
}

async function decryptFrame(decryptor, frame, controller, kind, codec) {
  const data = new Uint8Array(frame.data);
  const fk = frameKind(frame, kind, codec);
  counters.bytesIn[kind] += data.length;
  if (data.length === 0 || fk === null) {
    counters.passedEmpty[kind]++;
    controller.enqueue(frame);
    return;
  }
  try {
    const { plaintext, ratchets } = await decryptor.open(fk, data);
    if (ratchets > 0) counters.ratchetRecoveries[kind]++;
    frame.data = plaintext.buffer;
    counters.decrypted[kind]++;
    controller.enqueue(frame);
  } catch (e) {
    if (!(e instanceof FrameError)) counters.lastError = String(e);
    counters.decryptFailures[kind]++; // dropped: never hand ciphertext to the decoder
    if (kind === 'video') lastUnopenedVideo = data;
  }
}
