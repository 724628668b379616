// A Jitsi Meet participant for the end-to-end tests: the real lib-jitsi-meet
// (vendor/lib-jitsi-meet, window.JitsiMeetJS) with Jitsi's own E2EE (Olm key
// exchange in MUC private messages, per-frame AES-GCM in its worker, SAS
// verification), joined to a room on prosody (lib/prosody.mjs) over
// WebSocket. It publishes Chromium's fake camera and microphone and exposes
// what a test asserts on as `window.jitsiTest` (driven by jitsi/page.mjs):
// decoded and presented frames of remote video, motion in the remote picture,
// the energy of remote audio, the E2EE state of everyone, SAS, and the media
// keys this page received (so that a test can show that a key handed out
// before a leave does not open what is sealed after it).
//
// Key material never goes into the page's log or state: receivedKey() hands
// it to the driver on request only.

const JM = window.JitsiMeetJS;
const E2EE_FEATURE = 'https://jitsi.org/meet/e2ee';
// lib-jitsi-meet's OlmAdapter event (the typo is upstream's).
const OLM_KEY_UPDATED = 'olm.partitipant_key_updated';
const KEYRING_SIZE = 16;

const log = [];
const t0 = performance.now();
function note(...parts) {
  log.push(`${((performance.now() - t0) / 1000).toFixed(2)} ${parts.join(' ')}`);
  if (log.length > 400) log.shift();
}
window.addEventListener('error', (e) => note('error:', e.message));
window.addEventListener('unhandledrejection', (e) => note('unhandled rejection:', String(e.reason?.stack ?? e.reason)));

const state = {
  opts: null,
  conn: null,
  conf: null,
  joined: false,
  e2eeReady: false,
  connectionFailed: null,
  conferenceFailed: null,
  localTracks: [],
  /** participant id -> {video: HTMLVideoElement|null, audio: HTMLAudioElement|null, presentedFrames, energy} */
  remote: new Map(),
  sasAvailable: new Set(),
  /** participant id -> {decimal, emoji} as lib-jitsi-meet shows it */
  sas: new Map(),
  /** participant id -> {success, message} */
  verification: new Map(),
  /** participant id -> [{index, key: Uint8Array|false, at}] (key material: never in stats()) */
  keysReceived: new Map(),
  p2pEvents: [],
  audioContext: null,
};

// ---------------------------------------------------------------- joining

/**
 * Connect to prosody, publish the fake camera and microphone, turn E2EE on (or not) and join.
 * @returns {Promise<{myId: string, e2eeSupported: boolean, version: string}>}
 */
async function start(o) {
  const {
    wsUrl, room, e2ee = true, display = 'participant', domain = 'meet.jitsi', muc = `conference.${domain}`,
    focus = `focus.${domain}`, disableFocus = false, video = { width: 640, height: 480, fps: 20 }, audio = true,
    logLevel = 'info', timeoutMs = 20000,
  } = o;
  state.opts = { wsUrl, room, e2ee, display, domain };
  JM.init({ flags: {} });
  JM.setLogLevel(JM.logLevels[logLevel.toUpperCase()] ?? JM.logLevels.INFO);
  note('lib-jitsi-meet', JM.version, 'connecting to', wsUrl, 'room', room, 'e2ee', e2ee);

  const conn = new JM.JitsiConnection(null, null, {
    hosts: { domain, muc, focus },
    serviceUrl: wsUrl,
    p2p: { enabled: true, stunServers: [] },
    enableEncodedTransformSupport: true,
    disableFocus,
  });
  state.conn = conn;
  const CE = JM.events.connection;
  await withTimeout(new Promise((resolve, reject) => {
    conn.addEventListener(CE.CONNECTION_ESTABLISHED, () => resolve());
    conn.addEventListener(CE.CONNECTION_FAILED, (err, msg) => {
      state.connectionFailed = `${err} ${msg ?? ''}`.trim();
      reject(new Error(`connection failed: ${state.connectionFailed}`));
    });
    conn.addEventListener(CE.CONNECTION_DISCONNECTED, (msg) => note('connection disconnected', msg ?? ''));
    conn.connect();
  }), timeoutMs, `XMPP connection to ${wsUrl}`);
  note('connected as', conn.xmpp.connection.jid);

  const conf = conn.initJitsiConference(room, {
    p2p: { enabled: true, stunServers: [], backToP2PDelay: 1 },
    enableEncodedTransformSupport: true,
    disableFocus,
    e2ee: {},
  });
  state.conf = conf;
  listen(conf);
  conf.setDisplayName(display);

  const wantVideo = video !== false;
  const devices = [...(audio ? ['audio'] : []), ...(wantVideo ? ['video'] : [])];
  if (devices.length) {
    const constraints = wantVideo
      ? { video: { width: { ideal: video.width }, height: { ideal: video.height }, frameRate: { ideal: video.fps, max: video.fps } } }
      : undefined;
    state.localTracks = await JM.createLocalTracks({ devices, constraints });
    for (const t of state.localTracks) await conf.addTrack(t);
    note('local tracks', state.localTracks.map((t) => t.getType()).join(','));
  }

  const e2eeSupported = conf.isE2EESupported();
  if (e2ee) {
    if (!e2eeSupported) throw new Error('lib-jitsi-meet says E2EE is not supported here (Olm missing or no encoded transforms)');
    conf.toggleE2EE(true);
    // Wait for lib-jitsi-meet to finish turning E2EE on (Olm loaded, own key
    // set) before joining: the first time it is turned on it restarts the
    // media sessions, which would end a P2P session offered in the meantime.
    const enabling = conf._e2eEncryption?._keyHandler?._enabling;
    if (enabling) await withTimeout(enabling.promise, timeoutMs, 'turning E2EE on (Olm)');
    state.e2eeReady = true;
  }
  await withTimeout(new Promise((resolve, reject) => {
    conf.on(JM.events.conference.CONFERENCE_JOINED, () => resolve());
    conf.on(JM.events.conference.CONFERENCE_FAILED, (err, ...rest) => {
      state.conferenceFailed = `${err} ${rest.map(String).join(' ')}`.trim();
      reject(new Error(`conference failed: ${state.conferenceFailed}`));
    });
    conf.join();
  }), timeoutMs, `joining room ${room}`);
  state.joined = true;
  hookKeyUpdates(conf);
  note('joined', room, 'as', conf.myUserId());
  return { myId: conf.myUserId(), e2eeSupported, version: JM.version };
}

function listen(conf) {
  const C = JM.events.conference;
  conf.on(C.USER_JOINED, (id, p) => note('user joined', id, p.getDisplayName() ?? ''));
  conf.on(C.USER_LEFT, (id) => { note('user left', id); dropRemote(id); });
  conf.on(C.P2P_STATUS, (_c, active) => { state.p2pEvents.push({ at: performance.now(), active }); note('p2p status', active); });
  conf.on(C.TRACK_ADDED, (track) => { if (!track.isLocal()) attachRemote(track); });
  conf.on(C.TRACK_REMOVED, (track) => { if (!track.isLocal()) detachRemote(track); });
  conf.on(C.E2EE_VERIFICATION_AVAILABLE, (id) => { state.sasAvailable.add(id); note('sas available with', id); });
  conf.on(C.E2EE_VERIFICATION_READY, (id, sas) => {
    state.sas.set(id, { decimal: sas.decimal, emoji: sas.emoji });
    note('sas ready with', id, JSON.stringify(sas.decimal));
  });
  conf.on(C.E2EE_VERIFICATION_COMPLETED, (id, success, message) => {
    state.verification.set(id, { success, message: message ?? null });
    note('sas completed with', id, success, message ?? '');
  });
  conf.on(C.CONFERENCE_ERROR, (e) => note('conference error', e));
  conf.on(C.KICKED, () => note('kicked'));
}

/** Keep what lib-jitsi-meet's Olm adapter hands to the decryptor for each participant (not a public API). */
function hookKeyUpdates(conf) {
  const olm = conf._e2eEncryption?._keyHandler?._olmAdapter;
  if (!olm) { note('no Olm adapter: received keys are not recorded'); return; }
  olm.on(OLM_KEY_UPDATED, (id, key, index) => {
    const list = state.keysReceived.get(id) ?? [];
    list.push({ index, key: key ? new Uint8Array(key) : false, at: performance.now() });
    state.keysReceived.set(id, list);
    note('key from', id, 'index', index, key ? '(set)' : '(none)');
  });
}

// ---------------------------------------------------------------- remote media

function remoteOf(id) {
  let r = state.remote.get(id);
  if (!r) {
    r = { video: null, audio: null, presentedFrames: 0, energy: { samples: 0, sum: 0, max: 0 }, analyserTimer: null };
    state.remote.set(id, r);
  }
  return r;
}

function attachRemote(track) {
  const id = track.getParticipantId();
  const r = remoteOf(id);
  const kind = track.getType();
  note('remote track', kind, 'from', id);
  const el = document.createElement(kind);
  el.autoplay = true;
  el.playsInline = true;
  // Remote audio must play through an element for WebAudio to see it (Chromium); muted, the analyser still does.
  el.muted = true;
  document.getElementById('remote').appendChild(el);
  track.attach(el);
  el.play?.().catch((e) => note('play:', e.message));
  if (kind === 'video') {
    r.video = el;
    el.width = 320;
    el.height = 240;
    const count = () => { r.presentedFrames++; el.requestVideoFrameCallback(count); };
    el.requestVideoFrameCallback(count);
  } else {
    r.audio = el;
    analyse(r, track.getOriginalStream());
  }
}

function analyse(r, stream) {
  state.audioContext ??= new AudioContext();
  const ctx = state.audioContext;
  ctx.resume().catch(() => {});
  const src = ctx.createMediaStreamSource(stream);
  const an = ctx.createAnalyser();
  an.fftSize = 2048;
  src.connect(an);
  const buf = new Float32Array(an.fftSize);
  clearInterval(r.analyserTimer);
  r.analyserTimer = setInterval(() => {
    an.getFloatTimeDomainData(buf);
    let s = 0;
    for (const x of buf) s += x * x;
    const rms = Math.sqrt(s / buf.length);
    r.energy.samples++;
    r.energy.sum += rms;
    r.energy.max = Math.max(r.energy.max, rms);
  }, 100);
}

function detachRemote(track) {
  const r = state.remote.get(track.getParticipantId());
  if (!r) return;
  const kind = track.getType();
  if (kind === 'video' && r.video) { track.detach(r.video); r.video.remove(); r.video = null; }
  if (kind === 'audio' && r.audio) { clearInterval(r.analyserTimer); track.detach(r.audio); r.audio.remove(); r.audio = null; }
}

function dropRemote(id) {
  const r = state.remote.get(id);
  if (!r) return;
  clearInterval(r.analyserTimer);
  r.video?.remove();
  r.audio?.remove();
  state.remote.delete(id);
}

// ---------------------------------------------------------------- observation

/** Everything a test asserts on, without key material. */
async function stats() {
  const conf = state.conf;
  const out = {
    joined: state.joined,
    myId: conf?.myUserId() ?? null,
    display: state.opts?.display ?? null,
    e2eeSupported: conf?.isE2EESupported() ?? false,
    e2eeEnabled: conf?.isE2EEEnabled() ?? false,
    e2eeReady: state.e2eeReady,
    p2pActive: conf?.isP2PActive() ?? false,
    p2pEvents: state.p2pEvents.slice(),
    participants: [],
    remote: {},
    rtp: null,
    connectionFailed: state.connectionFailed,
    conferenceFailed: state.conferenceFailed,
    log: log.slice(-60),
  };
  if (!conf) return out;
  const olm = conf._e2eEncryption?._keyHandler?._olmAdapter;
  for (const p of conf.getParticipants()) {
    const id = p.getId();
    const keys = state.keysReceived.get(id) ?? [];
    out.participants.push({
      id,
      display: p.getDisplayName() ?? null,
      e2eeEnabled: p.getProperty('e2ee.enabled') === true || p.getProperty('e2ee.enabled') === 'true',
      e2eeFeature: p.hasFeature(E2EE_FEATURE),
      idKeyEd25519: Boolean(p.getProperty('e2ee.idKey.ed25519')),
      olmSession: Boolean(olm?._getParticipantOlmData(p)?.session),
      keysReceived: keys.length,
      lastKeyIndex: keys.length ? keys[keys.length - 1].index : null,
      sasAvailable: state.sasAvailable.has(id),
      sas: state.sas.get(id) ?? null,
      verification: state.verification.get(id) ?? null,
    });
  }
  for (const [id, r] of state.remote) {
    out.remote[id] = {
      video: Boolean(r.video),
      audio: Boolean(r.audio),
      presentedFrames: r.presentedFrames,
      videoSize: r.video ? [r.video.videoWidth, r.video.videoHeight] : null,
      audioRmsMax: r.energy.max,
      audioRmsMean: r.energy.samples ? r.energy.sum / r.energy.samples : 0,
      audioSamples: r.energy.samples,
    };
  }
  const pc = conf.p2pJingleSession?.peerconnection?.peerconnection;
  if (pc) out.rtp = await rtpStats(pc);
  return out;
}

async function rtpStats(pc) {
  const out = {
    iceState: pc.iceConnectionState,
    video: { framesDecoded: 0, framesReceived: 0, keyFramesDecoded: 0, framesDropped: 0, packetsReceived: 0, width: 0, height: 0, codec: null, pliCount: 0 },
    audio: { packetsReceived: 0, totalAudioEnergy: 0, audioLevel: 0, codec: null },
    sent: { framesEncoded: 0, videoPackets: 0, audioPackets: 0, width: 0, height: 0, fps: 0, codec: null },
    transforms: {
      senders: pc.getSenders().filter((s) => s.track).map((s) => ({ kind: s.track.kind, transform: Boolean(s.transform) })),
      receivers: pc.getReceivers().map((r) => ({ kind: r.track.kind, transform: Boolean(r.transform) })),
    },
  };
  const report = await pc.getStats();
  const codecs = new Map();
  report.forEach((s) => { if (s.type === 'codec') codecs.set(s.id, s.mimeType); });
  report.forEach((s) => {
    if (s.type === 'inbound-rtp' && s.kind === 'video') {
      const v = out.video;
      v.framesDecoded += s.framesDecoded ?? 0;
      v.framesReceived += s.framesReceived ?? 0;
      v.keyFramesDecoded += s.keyFramesDecoded ?? 0;
      v.framesDropped += s.framesDropped ?? 0;
      v.packetsReceived += s.packetsReceived ?? 0;
      v.pliCount += s.pliCount ?? 0;
      v.width = s.frameWidth ?? v.width;
      v.height = s.frameHeight ?? v.height;
      v.codec = codecs.get(s.codecId) ?? v.codec;
    } else if (s.type === 'inbound-rtp' && s.kind === 'audio') {
      const a = out.audio;
      a.packetsReceived += s.packetsReceived ?? 0;
      a.totalAudioEnergy += s.totalAudioEnergy ?? 0;
      a.audioLevel = Math.max(a.audioLevel, s.audioLevel ?? 0);
      a.codec = codecs.get(s.codecId) ?? a.codec;
    } else if (s.type === 'outbound-rtp' && s.kind === 'video') {
      const o = out.sent;
      o.framesEncoded += s.framesEncoded ?? 0;
      o.videoPackets += s.packetsSent ?? 0;
      o.width = s.frameWidth ?? o.width;
      o.height = s.frameHeight ?? o.height;
      o.fps = s.framesPerSecond ?? o.fps;
      o.codec = codecs.get(s.codecId) ?? o.codec;
    } else if (s.type === 'outbound-rtp' && s.kind === 'audio') {
      out.sent.audioPackets += s.packetsSent ?? 0;
    }
  });
  return out;
}

/**
 * Sample `id`'s video (default: the first remote video) `samples` times, each
 * on a newly presented frame at least `intervalMs` after the last sample; mean
 * absolute pixel difference between consecutive samples. `presented`: frames
 * the element presented while sampling.
 */
async function motion(id = null, samples = 5, intervalMs = 300) {
  const r = id ? state.remote.get(id) : [...state.remote.values()].find((x) => x.video);
  const el = r?.video;
  if (!el || !el.videoWidth) return { diffs: [], luma: [], presented: 0, reason: 'no remote video playing' };
  const c = new OffscreenCanvas(160, 120);
  const g = c.getContext('2d', { willReadFrequently: true });
  const frames = [];
  const p0 = r.presentedFrames;
  const deadline = performance.now() + samples * intervalMs * 3 + 2000;
  let last = -Infinity;
  while (frames.length < samples && performance.now() < deadline) {
    // The next presented frame (or a timeout, if none comes).
    await new Promise((res) => {
      const t = setTimeout(res, 1000);
      el.requestVideoFrameCallback(() => { clearTimeout(t); res(); });
    });
    const now = performance.now();
    if (now - last < intervalMs) continue;
    last = now;
    g.drawImage(el, 0, 0, 160, 120);
    frames.push(g.getImageData(0, 0, 160, 120).data.slice());
  }
  const diffs = [];
  for (let i = 1; i < frames.length; i++) {
    let sum = 0;
    const a = frames[i - 1], b = frames[i];
    for (let j = 0; j < a.length; j += 4) sum += Math.abs(a[j] - b[j]) + Math.abs(a[j + 1] - b[j + 1]) + Math.abs(a[j + 2] - b[j + 2]);
    diffs.push(sum / (a.length / 4) / 3);
  }
  const luma = frames.map((f) => { let s = 0; for (let j = 0; j < f.length; j += 4) s += f[j] + f[j + 1] + f[j + 2]; return s / (f.length / 4) / 3; });
  return { diffs, luma, presented: r.presentedFrames - p0 };
}

// ---------------------------------------------------------------- actions

/**
 * Offer a P2P session to the only other participant. lib-jitsi-meet never starts
 * P2P itself while E2EE is on (it accepts an offer, and encrypts it); in the
 * browser-only tests one page plays the offering side, as the room's connector does.
 */
function startP2P() {
  state.conf.startP2PSession();
}

/** End the P2P session with a Jingle session-terminate to the peer. */
function stopP2P() {
  if (state.conf?.p2pJingleSession) state.conf._stopP2PSession({ reason: 'success', reasonDescription: 'cloakroom test page ends P2P' });
}

/** Start SAS verification with `id` (lib-jitsi-meet's Olm SAS in MUC private messages). */
function startVerification(id) {
  state.conf.startVerification(id);
}

/** Say whether the SAS code shown for `id` matches the other side's (sends the SAS MAC when true). */
function confirmVerification(id, matches = true) {
  state.conf.markParticipantVerified(id, matches);
}

/**
 * The last media key received from `id` over Olm, as base64, with its index; null if none.
 * For a test's leak check only: the caller passes it to another page, never to a log.
 */
function receivedKey(id) {
  const list = state.keysReceived.get(id) ?? [];
  const last = list[list.length - 1];
  if (!last || !last.key) return null;
  return { keyB64: btoa(String.fromCharCode(...last.key)), index: last.index };
}

/**
 * Make `key` the only decryption key this page holds for `id`: at
 * `currentIndex` (the index `id`'s frames carry now), every other slot of the
 * key ring emptied (frames naming another index are dropped). The worker
 * ratchets a key forward on a failed decryption only in its current slot
 * (lib-jitsi-meet's Context), and the slot set last becomes current: the empty
 * slots are set first (synchronously in the worker), the key last (it is
 * derived asynchronously), so the key's slot ends current whatever the timing.
 */
function forceKeyFor(id, keyB64, currentIndex = 0) {
  const ctx = state.conf._e2eEncryption?._keyHandler?.e2eeCtx;
  if (!ctx) throw new Error('no E2EE context on this page');
  const key = Uint8Array.from(atob(keyB64), (ch) => ch.charCodeAt(0));
  const current = ((currentIndex % KEYRING_SIZE) + KEYRING_SIZE) % KEYRING_SIZE;
  for (let i = 0; i < KEYRING_SIZE; i++) if (i !== current) ctx.setKey(id, false, i);
  ctx.setKey(id, key, current);
  note('decryption key for', id, 'replaced: the only one, at index', current);
}

async function leave() {
  const { conf, conn } = state;
  for (const r of state.remote.values()) clearInterval(r.analyserTimer);
  // End P2P with a session-terminate first: lib-jitsi-meet's leave() closes the
  // session without telling the peer, and a peer with E2EE on never ends it by
  // itself (its automatic P2P logic is off), so it would refuse the next offer
  // as "busy". The room's connector must do the same when it leaves.
  if (conf?.p2pJingleSession && state.joined) {
    stopP2P();
    await new Promise((res) => setTimeout(res, 300));
  }
  if (conf && state.joined) await withTimeout(conf.leave(), 5000, 'leaving').catch((e) => note('leave:', e.message));
  state.joined = false;
  for (const t of state.localTracks) await t.dispose().catch(() => {});
  state.localTracks = [];
  if (conn) await withTimeout(conn.disconnect(), 3000, 'disconnecting').catch((e) => note('disconnect:', e.message));
  await state.audioContext?.close().catch(() => {});
  state.audioContext = null;
  note('left');
}

// ---------------------------------------------------------------- helpers

function withTimeout(promise, ms, what) {
  let timer;
  return Promise.race([
    Promise.resolve(promise).finally(() => clearTimeout(timer)),
    new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms); }),
  ]);
}

window.jitsiTest = {
  start, stats, motion, startP2P, stopP2P, startVerification, confirmVerification, receivedKey, forceKeyFor, leave,
  version: JM?.version ?? null,
  /** lib-jitsi-meet's JitsiConference, for experiments by hand; tests use the functions above. */
  conference: () => state.conf,
};

// Opened by a person (tools/demo --jitsi): `#ws=<url>&room=<room>&domain=<d>&name=<n>`
// joins at once with E2EE on; the room's picture appears below.
{
  const h = new URLSearchParams(location.hash.slice(1));
  if (h.get('ws') && h.get('room')) {
    start({ wsUrl: h.get('ws'), room: h.get('room'), domain: h.get('domain') ?? 'meet.jitsi', display: h.get('name') ?? 'Visitor' })
      .then(() => note('joined from the page address'))
      .catch((e) => document.body.insertAdjacentText('afterbegin', `could not join: ${e.message}`));
  }
}
