// Runs Debian's Janus (1.1.2) for a test: its own generated config folder,
// only the websockets transport and the videoroom plugin, inside a network
// namespace reached over a veth pair. Janus 1.1.2 skips loopback interfaces
// when gathering ICE candidates, so media must cross a real (virtual) link.
// Needs root (ip netns). Everything stays on this machine.

import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, writeFileSync, symlinkSync, readFileSync, rmSync, existsSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import net from 'node:net';

const JANUS = '/usr/bin/janus';
const JANUS_LIB = '/usr/lib/x86_64-linux-gnu/janus';
const NS_PREFIX = 'cloakroom-e2e-';

/**
 * Start Janus with a VideoRoom room.
 * @param {object} [opts]
 * @param {number} [opts.room=1234] room id created from the config file
 * @param {string} [opts.videocodec='vp8,h264'] room's allowed video codecs, in preference order
 * @param {number} [opts.port=8188] websocket port (inside the namespace)
 * @param {number} [opts.maxSeconds=600] hard bound on Janus's lifetime
 * @param {number} [opts.startTimeoutMs=20000]
 * @param {boolean} [opts.requireE2ee=false] the room's `require_e2ee`: Janus refuses a publisher
 *   whose offer is not flagged end-to-end encrypted (433 "Room requires end-to-end encrypted media")
 * @param {boolean} [opts.isolatedNetwork=false] also make `isolated`: a network namespace whose
 *   only link is a second veth pair to Janus's namespace (a /30, no default route, no other
 *   route), for a device on a network without a default route. Janus gathers ICE candidates on
 *   that link too (it sends media only out of the interfaces it gathers on) and its WebSocket
 *   listens on every address, so `isolated.wsUrl` reaches it from there.
 * @returns {Promise<{wsUrl: string, room: number, hostIp: string, janusIp: string,
 *   logPath: string, dir: string, log(): string, stop(): Promise<void>,
 *   isolated: null | {namespace: string, ip: string, janusIp: string, wsUrl: string,
 *     routes(): string, hasRouteTo(addr: string): boolean}}>}
 */
export async function startJanus(opts = {}) {
  const { room = 1234, videocodec = 'vp8,h264', port = 8188, maxSeconds = 600, startTimeoutMs = 20000, debugLevel = 4, requireE2ee = false,
    isolatedNetwork = false } = opts;
  if (process.getuid && process.getuid() !== 0) throw new Error('startJanus needs root (ip netns)');
  if (!existsSync(JANUS)) throw new Error(`${JANUS} missing: apt-get install janus`);
  sweepStaleNamespaces();

  const id = `${process.pid}-${Math.floor(Math.random() * 1e6).toString(36)}`;
  const ns = `${NS_PREFIX}${id}`;
  const { hostIp, janusIp } = pickSubnet();
  // Interface names are limited to 15 characters.
  const tag = (process.pid % 100000).toString(36) + Math.floor(Math.random() * 1296).toString(36);
  const vethHost = `crh${tag}`;
  const vethNs = `crn${tag}`;
  // The isolated network's link: `cri…` in its own namespace, `crj…` in Janus's.
  const iso = isolatedNetwork ? { ns: `${ns}-iso`, veth: `cri${tag}`, vethJanus: `crj${tag}` } : null;

  const dir = mkdtempSync(join(tmpdir(), `cloakroom-janus-${process.pid}-`));
  const logPath = join(dir, 'janus.log');
  writeConfig(dir, { room, videocodec, port, janusIp, iceInterfaces: iso ? [vethNs, iso.vethJanus] : [vethNs], wsAnyAddress: !!iso, requireE2ee });

  const state = { ns, vethHost, dir, proc: null, stopped: false, extraNs: iso ? [iso.ns] : [] };
  cleanups.add(state);
  try {
    ip('netns', 'add', ns);
    ip('link', 'add', vethHost, 'type', 'veth', 'peer', 'name', vethNs);
    ip('link', 'set', vethNs, 'netns', ns);
    ip('addr', 'add', `${hostIp}/30`, 'dev', vethHost);
    ip('link', 'set', vethHost, 'up');
    ip('netns', 'exec', ns, 'ip', 'addr', 'add', `${janusIp}/30`, 'dev', vethNs);
    ip('netns', 'exec', ns, 'ip', 'link', 'set', vethNs, 'up');
    ip('netns', 'exec', ns, 'ip', 'link', 'set', 'lo', 'up');
    // Janus picks its local IP once at start: wait for the link to have carrier.
    await waitFor(() => /LOWER_UP/.test(ipOut('-n', ns, '-o', 'link', 'show', vethNs)), 5000, `${vethNs} carrier`);
    if (iso) {
      // A /30 free here and in Janus's namespace; Janus's end is the first address.
      const sub = pickSubnet(ipOut('-n', ns, '-4', '-o', 'addr'));
      Object.assign(iso, { janusIp: sub.hostIp, ip: sub.janusIp });
      ip('netns', 'add', iso.ns);
      ip('-n', ns, 'link', 'add', iso.vethJanus, 'type', 'veth', 'peer', 'name', iso.veth, 'netns', iso.ns);
      ip('-n', ns, 'addr', 'add', `${iso.janusIp}/30`, 'dev', iso.vethJanus);
      ip('-n', ns, 'link', 'set', iso.vethJanus, 'up');
      ip('-n', iso.ns, 'addr', 'add', `${iso.ip}/30`, 'dev', iso.veth);
      ip('-n', iso.ns, 'link', 'set', iso.veth, 'up');
      ip('-n', iso.ns, 'link', 'set', 'lo', 'up');
      await waitFor(() => /LOWER_UP/.test(ipOut('-n', ns, '-o', 'link', 'show', iso.vethJanus)), 5000, `${iso.vethJanus} carrier`);
    }

    // `timeout` bounds Janus's life even if this process dies without cleaning up.
    const args = ['netns', 'exec', ns, 'timeout', '--kill-after=5', String(maxSeconds), JANUS,
      '-F', join(dir, 'conf'), '-C', join(dir, 'conf', 'janus.jcfg'),
      '-P', join(dir, 'plugins'), '-L', logPath, '-N', '-o', '-D', '-d', String(debugLevel)];
    const proc = spawn('ip', args, { stdio: ['ignore', 'ignore', 'pipe'], detached: true });
    state.proc = proc;
    let stderr = '';
    proc.stderr.on('data', (d) => { stderr += d; });
    let exited = null;
    proc.on('exit', (code, signal) => { exited = { code, signal }; });

    const deadline = Date.now() + startTimeoutMs;
    while (true) {
      if (exited) throw new Error(`janus exited early (${JSON.stringify(exited)}): ${stderr}\n${tail(logPath)}`);
      if (Date.now() > deadline) throw new Error(`janus did not open ws://${janusIp}:${port} in ${startTimeoutMs} ms\n${tail(logPath)}`);
      if (await canConnect(janusIp, port)) break;
      await sleep(200);
    }
  } catch (e) {
    await stopState(state);
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }

  return {
    wsUrl: `ws://${janusIp}:${port}/`,
    room,
    hostIp,
    janusIp,
    namespace: ns,
    dir,
    logPath,
    log: () => (existsSync(logPath) ? readFileSync(logPath, 'utf8') : ''),
    isolated: iso && {
      namespace: iso.ns,
      ip: iso.ip,
      janusIp: iso.janusIp,
      wsUrl: `ws://${iso.janusIp}:${port}/`,
      routes: () => ipOut('-n', iso.ns, '-4', 'route', 'show', 'table', 'all') + ipOut('-n', iso.ns, '-6', 'route', 'show', 'table', 'all'),
      /** Whether the namespace has a route to `addr` (`ip route get`). */
      hasRouteTo: (addr) => {
        try {
          execFileSync('ip', ['-n', iso.ns, 'route', 'get', addr], { stdio: 'ignore' });
          return true;
        } catch {
          return false;
        }
      },
    },
    stop: async ({ keepDir = false } = {}) => {
      await stopState(state);
      if (!keepDir) rmSync(dir, { recursive: true, force: true });
    },
  };
}

// ---------------------------------------------------------------- config

function writeConfig(dir, { room, videocodec, port, janusIp, iceInterfaces, wsAnyAddress, requireE2ee }) {
  const conf = join(dir, 'conf');
  const plugins = join(dir, 'plugins');
  const transports = join(dir, 'transports');
  const empty = join(dir, 'empty');
  for (const d of [conf, plugins, transports, empty]) mkdirSync(d);
  // Only the modules we want: Janus loads every .so in these folders.
  symlinkSync(join(JANUS_LIB, 'plugins', 'libjanus_videoroom.so'), join(plugins, 'libjanus_videoroom.so'));
  symlinkSync(join(JANUS_LIB, 'transports', 'libjanus_websockets.so'), join(transports, 'libjanus_websockets.so'));

  writeFileSync(join(conf, 'janus.jcfg'), `
general: {
  configs_folder = "${conf}"
  plugins_folder = "${plugins}"
  transports_folder = "${transports}"
  events_folder = "${empty}"
  loggers_folder = "${empty}"
  debug_level = 4
  admin_secret = "unused-${Math.random().toString(36).slice(2)}"
  session_timeout = 60
  server_name = "cloakroom-e2e"
  interface = "${janusIp}"
  protected_folders = []
}
certificates: {
}
media: {
  rtp_port_range = "20000-20999"
}
nat: {
  ice_enforce_list = "${iceInterfaces.join(',')}"
  ignore_mdns = true
  full_trickle = false
  ice_tcp = false
}
plugins: {
}
transports: {
}
loggers: {
}
events: {
}
`);
  writeFileSync(join(conf, 'janus.transport.websockets.jcfg'), `
general: {
  json = "compact"
  ws = true
  ws_port = ${port}${wsAnyAddress ? '' : `
  ws_ip = "${janusIp}"`}
  wss = false
}
admin: {
  admin_ws = false
  admin_wss = false
}
`);
  writeFileSync(join(conf, 'janus.plugin.videoroom.jcfg'), `
general: {
}
room-${room}: {
  description = "cloakroom e2e room"
  publishers = 8
  bitrate = 600000
  fir_freq = 5
  audiocodec = "opus"
  videocodec = "${videocodec}"
  notify_joining = true
  require_e2ee = ${requireE2ee ? 'true' : 'false'}
}
`);
}

// ---------------------------------------------------------------- namespaces and cleanup

const cleanups = new Set();

async function stopState(state) {
  if (state.stopped) return;
  state.stopped = true;
  cleanups.delete(state);
  const proc = state.proc;
  if (proc && proc.exitCode === null && proc.signalCode === null) {
    const done = new Promise((r) => proc.once('exit', r));
    killGroup(proc.pid, 'SIGTERM');
    const t = await Promise.race([done.then(() => 'exited'), sleep(5000).then(() => 'timeout')]);
    if (t === 'timeout') {
      killGroup(proc.pid, 'SIGKILL');
      await Promise.race([done, sleep(2000)]);
    }
  }
  for (const x of state.extraNs ?? []) teardownNamespace(x, null);
  teardownNamespace(state.ns, state.vethHost);
}

function killGroup(pid, signal) {
  try { process.kill(-pid, signal); } catch { /* already gone */ }
}

function teardownNamespace(ns, vethHost) {
  // Any process still in the namespace (a Janus that ignored SIGTERM) goes first.
  try {
    const pids = execFileSync('ip', ['netns', 'pids', ns], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })
      .split(/\s+/).filter(Boolean);
    for (const p of pids) { try { process.kill(Number(p), 'SIGKILL'); } catch { /* gone */ } }
  } catch { /* namespace gone */ }
  try { execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' }); } catch { /* gone */ }
  if (vethHost) { try { execFileSync('ip', ['link', 'del', vethHost], { stdio: 'ignore' }); } catch { /* went with the ns */ } }
}

/** Remove namespaces and config folders left behind by earlier runs whose process is dead. */
export function sweepStaleNamespaces() {
  for (const name of readdirSync(tmpdir())) {
    const m = /^cloakroom-janus-(\d+)-/.exec(name);
    if (m && Number(m[1]) !== process.pid && !isAlive(Number(m[1]))) rmSync(join(tmpdir(), name), { recursive: true, force: true });
  }
  let list = '';
  try { list = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' }); } catch { return; }
  for (const line of list.split('\n')) {
    const name = line.split(' ')[0];
    if (!name.startsWith(NS_PREFIX)) continue;
    const pid = Number(name.slice(NS_PREFIX.length).split('-')[0]);
    if (pid && pid !== process.pid && isAlive(pid)) continue;
    if (pid === process.pid && [...cleanups].some((s) => s.ns === name || s.extraNs?.includes(name))) continue;
    teardownNamespace(name, null);
  }
}

function isAlive(pid) {
  try { process.kill(pid, 0); return true; } catch (e) { return e.code === 'EPERM'; }
}

function syncCleanupAll() {
  for (const s of cleanups) {
    if (s.proc) killGroup(s.proc.pid, 'SIGKILL');
    for (const x of s.extraNs ?? []) teardownNamespace(x, null);
    teardownNamespace(s.ns, s.vethHost);
    if (s.dir) rmSync(s.dir, { recursive: true, force: true });
  }
  cleanups.clear();
}
process.once('exit', syncCleanupAll);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.once(sig, () => { syncCleanupAll(); process.exit(1); });
}

/** A free /30 in 10.231.0.0/16, starting from 10.231.7.0/30 (`alsoUsed`: `ip -o addr` of another namespace). */
function pickSubnet(alsoUsed = '') {
  const used = execFileSync('ip', ['-4', '-o', 'addr'], { encoding: 'utf8' }) + alsoUsed;
  for (let k = 0; k < 16384; k++) {
    const n = (7 * 64 + k) % 16384; // 10.231.7.0/30 first
    const base = n * 4;
    const a = `10.231.${base >> 8}.${(base & 0xff) + 1}`;
    const b = `10.231.${base >> 8}.${(base & 0xff) + 2}`;
    if (!used.includes(` ${a}/`) && !used.includes(` ${b}/`)) return { hostIp: a, janusIp: b };
  }
  throw new Error('no free /30 in 10.231.0.0/16');
}

// ---------------------------------------------------------------- helpers

function ip(...args) {
  try {
    execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (e) {
    throw new Error(`ip ${args.join(' ')}: ${e.stderr?.toString().trim() || e.message}`);
  }
}

function ipOut(...args) {
  return execFileSync('ip', args, { encoding: 'utf8' });
}

async function waitFor(pred, ms, what) {
  const deadline = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

function canConnect(host, port) {
  return new Promise((resolve) => {
    const s = net.connect({ host, port });
    const done = (ok) => { s.destroy(); resolve(ok); };
    s.setTimeout(1000, () => done(false));
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
  });
}

function tail(path, lines = 40) {
  if (!existsSync(path)) return '(no janus log)';
  return readFileSync(path, 'utf8').split('\n').slice(-lines).join('\n');
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
