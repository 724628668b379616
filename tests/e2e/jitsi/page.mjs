// Node side of the Jitsi Meet participants: a tiny HTTP server on 127.0.0.1
// for jitsi/participant.html with lib-jitsi-meet (vendor/) and Olm
// (node_modules/@matrix-org/olm) next to it, and a handle per participant
// page driving window.jitsiTest (jitsi/participant.mjs). The browser is
// Debian's Chromium from lib/browser.mjs (fake camera and microphone).

import { createServer } from 'node:http';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { dirname, join, normalize } from 'node:path';
import { sleep } from '../lib/prosody.mjs';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
// Only these files are served.
const SERVED = new Map([
  ['/jitsi/participant.html', 'text/html'],
  ['/jitsi/participant.mjs', 'text/javascript'],
  ['/vendor/lib-jitsi-meet/lib-jitsi-meet.min.js', 'text/javascript'],
  ['/vendor/lib-jitsi-meet/lib-jitsi-meet.e2ee-worker.js', 'text/javascript'],
  ['/node_modules/@matrix-org/olm/olm.js', 'text/javascript'],
  ['/node_modules/@matrix-org/olm/olm.wasm', 'application/wasm'],
]);

/** Serve the Jitsi participant page. @returns {Promise<{url: string, close(): Promise<void>}>} */
export async function startJitsiPageServer() {
  const server = createServer(async (req, res) => {
    const path = normalize(new URL(req.url, 'http://x').pathname);
    const type = SERVED.get(path);
    if (!type || req.method !== 'GET') { res.writeHead(404).end(); return; }
    try {
      const body = await readFile(join(ROOT, path));
      res.writeHead(200, { 'content-type': type, 'cache-control': 'no-store' }).end(body);
    } catch (e) {
      res.writeHead(500, { 'content-type': 'text/plain' }).end(`cannot read ${path}: ${e.code ?? e.message}`);
    }
  });
  await new Promise((resolve, reject) => server.listen(0, '127.0.0.1', resolve).once('error', reject));
  const { port } = server.address();
  return {
    url: `http://127.0.0.1:${port}/jitsi/participant.html`,
    close: () => new Promise((r) => { server.closeAllConnections?.(); server.close(() => r()); }),
  };
}

/**
 * Open one participant in its own browser context and join the room on prosody.
 * @param {import('playwright-core').Browser} browser from lib/browser.mjs launchBrowser()
 * @param {object} o
 * @param {string} o.pageUrl   from startJitsiPageServer()
 * @param {{wsUrl: string, domain: string}} o.prosody from lib/prosody.mjs startProsody()
 * @param {string} o.room      lower case (XMPP MUC room names)
 * @param {boolean} [o.e2ee=true] turn Jitsi's E2EE on before joining
 * @param {string} [o.display]
 * @param {{width: number, height: number, fps: number}|false} [o.video] camera constraints (default 640x480@20)
 * @param {boolean} [o.audio=true]
 * @returns the participant handle (see below)
 */
export async function openJitsiParticipant(browser, o) {
  const { pageUrl, prosody, room, e2ee = true, display = 'participant', video = { width: 640, height: 480, fps: 20 }, audio = true,
    logLevel = 'info' } = o;
  if (room !== room.toLowerCase()) throw new Error(`room name ${JSON.stringify(room)}: use lower case (MUC room names)`);
  const context = await browser.newContext();
  const page = await context.newPage();
  page.setDefaultTimeout(30000);
  const consoleLines = [];
  page.on('console', (m) => { consoleLines.push(`${m.type()}: ${m.text()}`); if (consoleLines.length > 300) consoleLines.shift(); });
  page.on('pageerror', (e) => consoleLines.push(`pageerror: ${e.message}`));
  const call = (fn, arg) => page.evaluate(fn, arg);
  const h = {
    page,
    display,
    e2ee,
    console: consoleLines,
    myId: null,
    /** The page's state: participants and their E2EE state, remote media, RTP statistics of the P2P session, log. */
    stats: () => call(() => window.jitsiTest.stats()),
    /** Mean absolute pixel differences of `id`'s video between `samples` snapshots `intervalMs` apart. */
    motion: (id = null, samples = 5, intervalMs = 300) => call(([i, n, ms]) => window.jitsiTest.motion(i, n, ms), [id, samples, intervalMs]),
    startP2P: () => call(() => window.jitsiTest.startP2P()),
    stopP2P: () => call(() => window.jitsiTest.stopP2P()),
    startVerification: (id) => call((i) => window.jitsiTest.startVerification(i), id),
    confirmVerification: (id, matches = true) => call(([i, m]) => window.jitsiTest.confirmVerification(i, m), [id, matches]),
    /** Opaque {keyB64, index} of the last key received from `id`; never print it. */
    receivedKey: (id) => call((i) => window.jitsiTest.receivedKey(i), id),
    /** Make `key` (from receivedKey) the only key this page holds for `id`, at `currentIndex` (the index `id`'s frames carry). */
    forceKeyFor: (id, key, currentIndex) => call(([i, k, n]) => window.jitsiTest.forceKeyFor(i, k, n), [id, key.keyB64, currentIndex]),
    /** Poll stats() until `pred` holds. */
    async waitFor(pred, ms, what) {
      const deadline = Date.now() + ms;
      let s;
      while (Date.now() < deadline) {
        s = await h.stats();
        if (pred(s)) return s;
        await sleep(250);
      }
      throw new Error(`${display}: timed out after ${ms} ms waiting for ${what}; last state: ${brief(s)}`);
    },
    /** Wait until `id` is in the room (with E2EE on and an Olm session, when `e2ee`). */
    waitForParticipant(id, ms, { e2ee: wantE2ee = false } = {}) {
      return h.waitFor((s) => (!wantE2ee || s.e2eeReady) && s.participants.some((p) => p.id === id
        && (!wantE2ee || (p.e2eeEnabled && p.e2eeFeature && p.olmSession && p.keysReceived > 0)))
      , ms, `participant ${id}${wantE2ee ? ' with E2EE, an Olm session and its key' : ''}`);
    },
    async leave() {
      await call(() => window.jitsiTest.leave()).catch(() => {});
    },
    async close() {
      await h.leave();
      await context.close().catch(() => {});
    },
  };
  try {
    await page.goto(pageUrl);
    await page.waitForFunction(() => window.jitsiTest !== undefined, null, { timeout: 10000 });
    const r = await call((opts) => window.jitsiTest.start(opts), {
      wsUrl: prosody.wsUrl, domain: prosody.domain, room, e2ee, display, video, audio, logLevel,
    });
    h.myId = r.myId;
    h.version = r.version;
  } catch (e) {
    await context.close().catch(() => {});
    throw new Error(`${display}: ${e.message}\n${consoleLines.slice(-30).join('\n')}`);
  }
  return h;
}

/**
 * Frames of remote video `r` decodes in a window of `ms` (RTP statistics of its P2P
 * session and frames presented by its <video>), with the state at both ends.
 */
export async function decodeWindow(r, ms = 5000) {
  const s0 = await r.stats();
  const t0 = Date.now();
  await sleep(ms);
  const s1 = await r.stats();
  const seconds = (Date.now() - t0) / 1000;
  const presented = (s) => Object.values(s.remote).reduce((n, x) => n + x.presentedFrames, 0);
  return {
    seconds,
    decoded: (s1.rtp?.video.framesDecoded ?? 0) - (s0.rtp?.video.framesDecoded ?? 0),
    received: (s1.rtp?.video.framesReceived ?? 0) - (s0.rtp?.video.framesReceived ?? 0),
    presented: presented(s1) - presented(s0),
    before: s0,
    after: s1,
  };
}

/** A short, key-free summary of a page's state for assertion messages. */
export function brief(s) {
  if (!s) return '(none)';
  const { log, p2pEvents, ...rest } = s;
  return `${JSON.stringify(rest)}\n  page log: ${(log ?? []).slice(-12).join(' | ')}`;
}
