// Browser participant: our own minimal Janus VideoRoom client over WebSocket
// (not janus.js), media from Chromium's fake devices, every frame sealed and
// opened in an RTCRtpScriptTransform worker. The test drives it through
// window.cloakroom (page.evaluate); keys arrive that way too, never in a URL.

const TIMEOUT_MS = 15000;
const log = [];
const note = (s) => { log.push(`${(performance.now() / 1000).toFixed(2)} ${s}`); if (log.length > 300) log.shift(); };

// ---------------------------------------------------------------- Janus client

class JanusSession {
  static async connect(url) {
    const ws = new WebSocket(url, 'janus-protocol');
    await withTimeout(new Promise((resolve, reject) => {
      ws.onopen = resolve;
      ws.onerror = () => reject(new Error(`websocket to ${url} failed`));
    }), TIMEOUT_MS, 'websocket open');
    const s = new JanusSession(ws);
    const r = await s.send({ janus: 'create' });
    s.id = r.data.id;
    s.keepalive = setInterval(() => s.send({ janus: 'keepalive' }, { ackIsReply: true }).catch(() => {}), 20000);
    return s;
  }

  constructor(ws) {
    this.ws = ws;
    this.pending = new Map();
    this.handles = new Map();
    this.next = 1;
    ws.onmessage = (e) => this.receive(JSON.parse(e.data));
    ws.onclose = () => { for (const p of this.pending.values()) p.reject(new Error('websocket closed')); this.pending.clear(); };
  }

  /** Send a request; resolves with its reply: the event after the ack (plugin messages), success, or the ack itself when ackIsReply. */
  send(msg, { ackIsReply = false } = {}) {
    const transaction = `t${this.next++}`;
    const full = { ...msg, transaction };
    if (this.id && !full.session_id) full.session_id = this.id;
    return withTimeout(new Promise((resolve, reject) => {
      this.pending.set(transaction, { resolve, reject, ackIsReply });
      this.ws.send(JSON.stringify(full));
    }), TIMEOUT_MS, `janus ${msg.janus} ${msg.body?.request ?? ''}`).finally(() => this.pending.delete(transaction));
  }

  receive(msg) {
    const p = msg.transaction && this.pending.get(msg.transaction);
    if (p && (msg.janus !== 'ack' || p.ackIsReply)) {
      if (msg.janus === 'error') p.reject(new Error(`janus error ${msg.error?.code}: ${msg.error?.reason}`));
      else if (msg.plugindata?.data?.error) p.reject(new Error(`videoroom error ${msg.plugindata.data.error_code}: ${msg.plugindata.data.error}`));
      else p.resolve(msg);
      return;
    }
    if (msg.janus === 'ack') return;
    const h = msg.sender && this.handles.get(msg.sender);
    if (h) h.onEvent(msg);
    else note(`unrouted ${msg.janus}`);
  }

  async attach(onEvent) {
    const r = await this.send({ janus: 'attach', plugin: 'janus.plugin.videoroom' });
    const h = { id: r.data.id, onEvent };
    this.handles.set(h.id, h);
    h.message = (body, jsep) => this.send({ janus: 'message', handle_id: h.id, body, ...(jsep ? { jsep } : {}) });
    h.detach = () => this.send({ janus: 'detach', handle_id: h.id }).catch(() => {});
    return h;
  }

  async destroy() {
    clearInterval(this.keepalive);
    try { await this.send({ janus: 'destroy' }); } catch { /* closing anyway */ }
    this.ws.close();
  }
}

// ---------------------------------------------------------------- participant

const state = {
  worker: null,
  session: null,
  opts: null,
  publisher: null, // { handle, pc, stream, feedId }
  subscriptions: new Map(), // feedId → { handle, pc, videos, audios }
  presentedFrames: 0,
  errors: [],
};

function worker() {
  if (!state.worker) {
    state.worker = new Worker(new URL('./transform-worker.mjs', import.meta.url), { type: 'module' });
    state.worker.onerror = (e) => state.errors.push(`worker: ${e.message}`);
    state.workerReplies = new Map();
    state.worker.onmessage = (e) => {
      const r = state.workerReplies.get(e.data.id);
      if (r) { state.workerReplies.delete(e.data.id); r(e.data); }
    };
  }
  return state.worker;
}

let workerSeq = 0;
function askWorker(msg, transfer = []) {
  const id = ++workerSeq;
  const w = worker();
  return withTimeout(new Promise((resolve) => {
    state.workerReplies.set(id, resolve);
    w.postMessage({ ...msg, id }, transfer);
  }), 5000, `worker ${msg.type}`);
}

/** Install 32 bytes of key material (hex) at a key index; the key is not kept on the page. */
async function setKey(hex, index = 0) {
  if (!/^[0-9a-fA-F]{64}$/.test(hex)) throw new Error('key material must be 64 hex digits');
  const material = new Uint8Array(32);
  for (let i = 0; i < 32; i++) material[i] = parseInt(hex.substr(i * 2, 2), 16);
  await askWorker({ type: 'setKey', index, material: material.buffer }, [material.buffer]);
}

/** Ratchet the current key forward once (the receivers must follow by ratcheting). */
async function ratchetKey() {
  await askWorker({ type: 'ratchet' });
}

/**
 * Join the room. opts: { wsUrl, room, display, publish, subscribe, codec: 'vp8'|'h264', transform, video }
 * video: getUserMedia video constraints (default 320×240 @ 20).
 * transform=false attaches no encoded transform (a plain browser that sees ciphertext).
 */
async function start(opts) {
  state.opts = { publish: true, subscribe: true, codec: 'vp8', transform: true, display: 'participant', ...opts };
  if (state.opts.transform) worker();
  state.session = await JanusSession.connect(state.opts.wsUrl);
  note(`session ${state.session.id}`);
  const handle = await state.session.attach((msg) => onPublisherHandleEvent(msg));
  const joined = await handle.message({ request: 'join', ptype: 'publisher', room: state.opts.room, display: state.opts.display });
  const data = joined.plugindata.data;
  state.publisher = { handle, feedId: data.id, privateId: data.private_id, pc: null };
  note(`joined as ${data.id}, ${data.publishers?.length ?? 0} publishers present`);
  if (state.opts.publish) await publish();
  if (state.opts.subscribe) for (const p of data.publishers ?? []) subscribe(p.id).catch((e) => state.errors.push(String(e)));
  return { feedId: data.id };
}

function onPublisherHandleEvent(msg) {
  if (msg.janus === 'event') {
    const d = msg.plugindata?.data ?? {};
    if (state.opts.subscribe && Array.isArray(d.publishers)) {
      for (const p of d.publishers) subscribe(p.id).catch((e) => state.errors.push(String(e)));
    }
    const gone = d.unpublished ?? d.leaving;
    if (gone && state.subscriptions.has(gone)) unsubscribe(gone);
  } else if (['webrtcup', 'media', 'hangup', 'slowlink'].includes(msg.janus)) {
    note(`publisher ${msg.janus} ${msg.type ?? ''} ${msg.receiving ?? ''} ${msg.reason ?? ''}`);
  }
}

async function publish() {
  const stream = await withTimeout(navigator.mediaDevices.getUserMedia({
    audio: true,
    video: state.opts.video ?? { width: 320, height: 240, frameRate: 20 },
  }), TIMEOUT_MS, 'getUserMedia');
  const pc = new RTCPeerConnection({ iceServers: [] });
  state.publisher.pc = pc;
  state.publisher.stream = stream;
  pc.oniceconnectionstatechange = () => note(`publisher ice ${pc.iceConnectionState}`);
  for (const track of stream.getTracks()) {
    const tr = pc.addTransceiver(track, { direction: 'sendonly', streams: [stream] });
    // Chromium ignores a transform attached after setLocalDescription: attach before createOffer.
    if (state.opts.transform) {
      tr.sender.transform = new RTCRtpScriptTransform(worker(), { operation: 'encrypt', kind: track.kind, codec: state.opts.codec });
    }
    if (track.kind === 'video') tr.setCodecPreferences(videoCodecs(state.opts.codec));
  }
  await pc.setLocalDescription(await pc.createOffer());
  await iceGatheringComplete(pc);
  const r = await state.publisher.handle.message(
    { request: 'publish', audio: true, video: true, display: state.opts.display },
    { type: 'offer', sdp: pc.localDescription.sdp },
  );
  if (!r.jsep) throw new Error('publish: no answer from janus');
  await pc.setRemoteDescription(r.jsep);
  note(`published, video codec ${r.plugindata.data.video_codec}`);
}

async function subscribe(feedId) {
  if (state.subscriptions.has(feedId) || feedId === state.publisher?.feedId) return;
  const sub = { feedId, handle: null, pc: null, videos: [], audios: [] };
  state.subscriptions.set(feedId, sub);
  sub.handle = await state.session.attach((msg) => {
    if (msg.janus !== 'event') note(`subscriber ${feedId} ${msg.janus}`);
  });
  const r = await sub.handle.message({
    request: 'join', ptype: 'subscriber', room: state.opts.room, streams: [{ feed: feedId }],
    private_id: state.publisher.privateId,
  });
  if (!r.jsep) throw new Error('subscribe: no offer from janus');
  const pc = new RTCPeerConnection({ iceServers: [] });
  sub.pc = pc;
  pc.oniceconnectionstatechange = () => note(`subscriber ${feedId} ice ${pc.iceConnectionState}`);
  pc.ontrack = (ev) => {
    // The receiver's transform goes on in ontrack, before the answer is created.
    if (state.opts.transform) {
      ev.receiver.transform = new RTCRtpScriptTransform(worker(), { operation: 'decrypt', kind: ev.track.kind, codec: state.opts.codec });
    }
    attachSink(sub, ev.track);
  };
  await pc.setRemoteDescription(r.jsep);
  await pc.setLocalDescription(await pc.createAnswer());
  await iceGatheringComplete(pc);
  await sub.handle.message({ request: 'start', room: state.opts.room }, { type: 'answer', sdp: pc.localDescription.sdp });
  note(`subscribed to ${feedId}`);
}

async function unsubscribe(feedId) {
  const sub = state.subscriptions.get(feedId);
  state.subscriptions.delete(feedId);
  sub?.pc?.close();
  await sub?.handle?.detach();
}

function attachSink(sub, track) {
  const el = document.createElement(track.kind);
  el.autoplay = true;
  el.playsInline = true;
  el.muted = track.kind === 'video';
  el.srcObject = new MediaStream([track]);
  document.body.appendChild(el);
  if (track.kind === 'video') {
    el.width = 320;
    el.height = 240;
    sub.videos.push(el);
    const count = () => { state.presentedFrames++; el.requestVideoFrameCallback(count); };
    el.requestVideoFrameCallback(count);
  } else {
    sub.audios.push(el);
  }
  el.play().catch((e) => state.errors.push(`play: ${e}`));
}

// ---------------------------------------------------------------- observation

async function stats() {
  const out = {
    worker: state.opts?.transform && state.worker ? (await askWorker({ type: 'stats' })).counters : null,
    video: { framesDecoded: 0, framesReceived: 0, keyFramesDecoded: 0, framesDropped: 0, width: 0, height: 0, codec: null, pliCount: 0, firCount: 0 },
    audio: { totalAudioEnergy: 0, audioLevel: 0, totalSamplesReceived: 0, packetsReceived: 0 },
    sent: { framesEncoded: 0, audioPackets: 0, codec: null },
    presentedFrames: state.presentedFrames,
    subscriptions: state.subscriptions.size,
    errors: state.errors.slice(),
    log: log.slice(-40),
  };
  for (const sub of state.subscriptions.values()) {
    if (!sub.pc) continue;
    const report = await sub.pc.getStats();
    const codecs = new Map();
    report.forEach((s) => { if (s.type === 'codec') codecs.set(s.id, s.mimeType); });
    report.forEach((s) => {
      if (s.type !== 'inbound-rtp') return;
      if (s.kind === 'video') {
        out.video.framesDecoded += s.framesDecoded ?? 0;
        out.video.framesReceived += s.framesReceived ?? 0;
        out.video.keyFramesDecoded += s.keyFramesDecoded ?? 0;
        out.video.framesDropped += s.framesDropped ?? 0;
        out.video.pliCount += s.pliCount ?? 0;
        out.video.firCount += s.firCount ?? 0;
        out.video.width = s.frameWidth ?? out.video.width;
        out.video.height = s.frameHeight ?? out.video.height;
        out.video.codec = codecs.get(s.codecId) ?? out.video.codec;
      } else if (s.kind === 'audio') {
        out.audio.totalAudioEnergy += s.totalAudioEnergy ?? 0;
        out.audio.audioLevel = Math.max(out.audio.audioLevel, s.audioLevel ?? 0);
        out.audio.totalSamplesReceived += s.totalSamplesReceived ?? 0;
        out.audio.packetsReceived += s.packetsReceived ?? 0;
      }
    });
  }
  if (state.publisher?.pc) {
    const report = await state.publisher.pc.getStats();
    const codecs = new Map();
    report.forEach((s) => { if (s.type === 'codec') codecs.set(s.id, s.mimeType); });
    report.forEach((s) => {
      if (s.type !== 'outbound-rtp') return;
      if (s.kind === 'video') { out.sent.framesEncoded += s.framesEncoded ?? 0; out.sent.codec = codecs.get(s.codecId) ?? out.sent.codec; }
      if (s.kind === 'audio') out.sent.audioPackets += s.packetsSent ?? 0;
    });
  }
  return out;
}

/** Sample the first remote video `samples` times; mean absolute pixel difference between consecutive samples. */
async function motion(samples = 5, intervalMs = 300) {
  const el = [...state.subscriptions.values()].flatMap((s) => s.videos)[0];
  if (!el || !el.videoWidth) return { diffs: [], luma: [], reason: 'no video' };
  const c = new OffscreenCanvas(160, 120);
  const g = c.getContext('2d', { willReadFrequently: true });
  const frames = [];
  for (let i = 0; i < samples; i++) {
    g.drawImage(el, 0, 0, 160, 120);
    frames.push(g.getImageData(0, 0, 160, 120).data.slice());
    await new Promise((r) => setTimeout(r, intervalMs));
  }
  const diffs = [];
  for (let i = 1; i < frames.length; i++) {
    let sum = 0;
    const a = frames[i - 1], b = frames[i];
    for (let j = 0; j < a.length; j += 4) sum += Math.abs(a[j] - b[j]) + Math.abs(a[j + 1] - b[j + 1]) + Math.abs(a[j + 2] - b[j + 2]);
    diffs.push(sum / (a.length / 4) / 3);
  }
  const luma = frames.map((f) => { let s = 0; for (let j = 0; j < f.length; j += 4) s += f[j] + f[j + 1] + f[j + 2]; return s / (f.length / 4) / 3; });
  return { diffs, luma };
}

async function close() {
  for (const id of [...state.subscriptions.keys()]) await unsubscribe(id).catch(() => {});
  state.publisher?.pc?.close();
  state.publisher?.stream?.getTracks().forEach((t) => t.stop());
  if (state.session) await state.session.destroy();
  state.worker?.terminate();
}

// ---------------------------------------------------------------- helpers

function videoCodecs(codec) {
  const all = RTCRtpReceiver.getCapabilities('video').codecs;
  const pick = codec === 'h264'
    ? all.filter((c) => c.mimeType === 'video/H264' && /packetization-mode=1/.test(c.sdpFmtpLine ?? '') && /profile-level-id=42e01f/.test(c.sdpFmtpLine ?? ''))
    : all.filter((c) => c.mimeType === 'video/VP8');
  if (!pick.length) throw new Error(`codec ${codec} not available in this browser`);
  return pick;
}

function iceGatheringComplete(pc) {
  if (pc.iceGatheringState === 'complete') return Promise.resolve();
  return withTimeout(new Promise((resolve) => {
    pc.addEventListener('icegatheringstatechange', () => { if (pc.iceGatheringState === 'complete') resolve(); });
  }), 5000, 'ICE gathering').catch(() => note('ICE gathering did not complete; sending what we have'));
}

function withTimeout(promise, ms, what) {
  let t;
  return Promise.race([
    promise,
    new Promise((_, reject) => { t = setTimeout(() => reject(new Error(`timeout: ${what}`)), ms); }),
  ]).finally(() => clearTimeout(t));
}

/** The bytes of the latest received video frame that did not open (null if none). */
async function cipherSample() {
  return (await askWorker({ type: 'cipherSample' })).bytes;
}

window.cloakroom = {
  setKey, ratchetKey, start, stats, motion, close, cipherSample,
  capabilities: () => ({
    transform: typeof RTCRtpScriptTransform === 'function',
    h264: RTCRtpSender.getCapabilities('video').codecs.some((c) => c.mimeType === 'video/H264'),
  }),
};
document.title = 'cloakroom participant ready';
