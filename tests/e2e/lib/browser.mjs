// Node side of the browser participants: a tiny HTTP server on 127.0.0.1 for
// the participant page (module workers need http, and localhost is a secure
// context), Debian's Chromium through playwright-core, and a handle per
// participant. Never downloads a browser.

import { createServer } from 'node:http';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { dirname, join, normalize } from 'node:path';
import { chromium } from 'playwright-core';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
// Only these files are served.
const SERVED = new Map([
  ['/page/participant.html', 'text/html'],
  ['/page/participant.mjs', 'text/javascript'],
  ['/page/transform-worker.mjs', 'text/javascript'],
  ['/lib/frame-crypto.mjs', 'text/javascript'],
]);

export const CHROMIUM = process.env.CLOAKROOM_CHROMIUM || '/usr/bin/chromium';

export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--use-fake-device-for-media-stream',
  '--use-fake-ui-for-media-stream',
  '--autoplay-policy=no-user-gesture-required',
  // Real host candidates instead of mDNS names (Janus does not resolve .local here).
  '--disable-features=WebRtcHideLocalIpsWithMdns',
];

/** Serve the participant page. @returns {Promise<{url: string, close(): Promise<void>}>} */
export async function startPageServer() {
  const server = createServer(async (req, res) => {
    const path = normalize(new URL(req.url, 'http://x').pathname);
    const type = SERVED.get(path);
    if (!type || req.method !== 'GET') { res.writeHead(404).end(); return; }
    try {
      const body = await readFile(join(ROOT, path));
      res.writeHead(200, { 'content-type': type, 'cache-control': 'no-store' }).end(body);
    } catch {
      res.writeHead(500).end();
    }
  });
  await new Promise((resolve, reject) => server.listen(0, '127.0.0.1', resolve).once('error', reject));
  const { port } = server.address();
  return {
    url: `http://127.0.0.1:${port}/page/participant.html`,
    close: () => new Promise((r) => { server.closeAllConnections?.(); server.close(() => r()); }),
  };
}

let shared = null;
/** One page server per process, started on first use (openParticipant without pageUrl). */
export async function sharedPageServer() {
  shared ??= startPageServer();
  return shared;
}
export async function stopSharedPageServer() {
  const s = shared;
  shared = null;
  if (s) await (await s).close();
}

/** Launch headless Debian Chromium with fake media devices. */
export async function launchBrowser({ extraArgs = [] } = {}) {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    timeout: 30000,
    args: [...CHROMIUM_ARGS, ...extraArgs],
  });
}

/**
 * Open one participant in its own browser context and join the room.
 * @param {import('playwright-core').Browser} browser
 * @param {object} o
 * @param {string} [o.pageUrl] from startPageServer(); default: a shared server started on first use
 * @param {string} o.wsUrl     from startJanus()
 * @param {number} o.room
 * @param {string|null} [o.keyHex]  64 hex digits of key material; null = no key installed
 * @param {number} [o.keyIndex=0]
 * @param {boolean} [o.publish=true]
 * @param {boolean} [o.subscribe=true]
 * @param {'vp8'|'h264'} [o.codec='vp8']
 * @param {boolean} [o.transform=true]  false: no encoded transform at all (a browser that gets ciphertext)
 * @param {string} [o.display]
 * @returns {Promise<{page, feedId: number, stats(): Promise<object>, ratchetKey(): Promise<void>, motion(samples?, intervalMs?): Promise<{diffs: number[], luma: number[]}>,
 *   waitFor(pred: (s) => boolean, ms: number, what: string): Promise<object>, close(): Promise<void>}>}
 */
export async function openParticipant(browser, o) {
  const { wsUrl, room, keyHex = null, keyIndex = 0, publish = true, subscribe = true, codec = 'vp8', transform = true, display = 'participant', video } = o;
  const pageUrl = o.pageUrl ?? (await sharedPageServer()).url;
  const context = await browser.newContext();
  const page = await context.newPage();
  page.setDefaultTimeout(30000);
  const consoleLines = [];
  page.on('console', (m) => { consoleLines.push(`${m.type()}: ${m.text()}`); if (consoleLines.length > 200) consoleLines.shift(); });
  page.on('pageerror', (e) => consoleLines.push(`pageerror: ${e.message}`));
  const handle = {
    page,
    console: consoleLines,
    stats: () => page.evaluate(() => window.cloakroom.stats()),
    ratchetKey: () => page.evaluate(() => window.cloakroom.ratchetKey()),
    motion: (samples = 5, intervalMs = 300) => page.evaluate(([n, ms]) => window.cloakroom.motion(n, ms), [samples, intervalMs]),
    async waitFor(pred, ms, what) {
      const deadline = Date.now() + ms;
      let s;
      while (Date.now() < deadline) {
        s = await handle.stats();
        if (pred(s)) return s;
        await new Promise((r) => setTimeout(r, 250));
      }
      throw new Error(`${display}: timed out after ${ms} ms waiting for ${what}; last stats: ${JSON.stringify(s)}`);
    },
    async close() {
      await page.evaluate(() => window.cloakroom.close()).catch(() => {});
      await context.close().catch(() => {});
    },
  };
  try {
    await page.goto(pageUrl);
    await page.waitForFunction(() => window.cloakroom !== undefined, null, { timeout: 10000 });
    // The key goes in as an evaluate argument: not in the URL, not logged.
    if (keyHex) await page.evaluate(([k, i]) => window.cloakroom.setKey(k, i), [keyHex, keyIndex]);
    const r = await page.evaluate((opts) => window.cloakroom.start(opts), { wsUrl, room, publish, subscribe, codec, transform, display, video });
    handle.feedId = r.feedId;
  } catch (e) {
    await handle.close();
    throw new Error(`${display}: ${e.message}\n${consoleLines.slice(-20).join('\n')}`);
  }
  return handle;
}

/** Chromium's capabilities on a served page (transform support, H.264). */
export async function browserCapabilities(browser, pageUrl) {
  pageUrl ??= (await sharedPageServer()).url;
  const context = await browser.newContext();
  try {
    const page = await context.newPage();
    await page.goto(pageUrl);
    await page.waitForFunction(() => window.cloakroom !== undefined, null, { timeout: 10000 });
    return await page.evaluate(() => window.cloakroom.capabilities());
  } finally {
    await context.close();
  }
}

/**
 * The room's participants as Janus lists them (VideoRoom `listparticipants`:
 * id, display, publisher, talking), asked over Janus's WebSocket API from a
 * blank page (Node 20 has no WebSocket client).
 * @returns {Promise<Array<{id: number, display?: string, publisher: boolean}>>}
 */
export async function janusParticipants(browser, wsUrl, room, timeoutMs = 10000) {
  const context = await browser.newContext();
  try {
    const page = await context.newPage();
    return await page.evaluate(([url, roomId, ms]) => new Promise((resolve, reject) => {
      const ws = new WebSocket(url, 'janus-protocol');
      const timer = setTimeout(() => { ws.close(); reject(new Error(`listparticipants: no answer in ${ms} ms`)); }, ms);
      let session = null;
      const send = (msg) => ws.send(JSON.stringify({ ...msg, transaction: msg.janus + Math.random().toString(36).slice(2) }));
      ws.onerror = () => { clearTimeout(timer); reject(new Error(`websocket to ${url} failed`)); };
      ws.onopen = () => send({ janus: 'create' });
      ws.onmessage = (e) => {
        const m = JSON.parse(e.data);
        if (m.janus === 'error') { clearTimeout(timer); ws.close(); reject(new Error(`janus error ${m.error?.code}: ${m.error?.reason}`)); return; }
        if (m.janus !== 'success') return;
        if (!session) {
          session = m.data.id;
          send({ janus: 'attach', plugin: 'janus.plugin.videoroom', session_id: session });
        } else if (m.plugindata) {
          clearTimeout(timer);
          send({ janus: 'destroy', session_id: session });
          ws.close();
          const d = m.plugindata.data;
          if (d.error) reject(new Error(`videoroom error ${d.error_code}: ${d.error}`));
          else resolve(d.participants);
        } else if (m.data?.id) {
          send({ janus: 'message', session_id: session, handle_id: m.data.id, body: { request: 'listparticipants', room: roomId } });
        }
      };
    }), [wsUrl, room, timeoutMs]);
  } finally {
    await context.close();
  }
}
