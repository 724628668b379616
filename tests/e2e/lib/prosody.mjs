// Runs Debian's prosody (0.12) for a Jitsi Meet test: the XMPP server that
// lib-jitsi-meet and the room's Jitsi connector talk to over WebSocket
// (`ws://<address>:<port>/xmpp-websocket`, plain HTTP), with an anonymous host
// `meet.jitsi`, the MUC `conference.meet.jitsi` and a focus stand-in at
// `focus.meet.jitsi` (jitsi/prosody/mod_fake_focus.lua: answers the focus's
// conference request with ready='true', nothing else; jicofo and the
// videobridge cannot be installed here, so 1:1 media runs P2P).
//
// prosody runs in a fresh network namespace whose only link is a veth pair to
// the host (a /30, no default route, no other route), as lib/janus.mjs does for
// Janus: a browser or the daemon on the host side reaches it at the namespace's
// address. Its config, data and log live in a scratch folder per run. Needs
// root (ip netns, runuser). Everything stays on this machine.
//
// Config adapted from ../shared/jitsi/prosody/prosody.cfg.lua (the setup that
// ran two lib-jitsi-meet participants with E2EE and SAS on this machine).

import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, copyFileSync, readFileSync, rmSync, existsSync, readdirSync, chownSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import http from 'node:http';

const PROSODY = '/usr/bin/prosody';
const RUNUSER = '/usr/sbin/runuser';
const NS_PREFIX = 'cloakroom-xmpp-';
const DIR_PREFIX = 'cloakroom-prosody-';
const PLUGIN_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', 'jitsi', 'prosody');

/** The XMPP names lib-jitsi-meet is configured with (and the daemon's link's `domain=`). */
export const JITSI_DOMAIN = 'meet.jitsi';
export const JITSI_MUC = `conference.${JITSI_DOMAIN}`;
export const JITSI_FOCUS = `focus.${JITSI_DOMAIN}`;

/**
 * Start prosody in its own network namespace and wait until its WebSocket endpoint answers.
 * @param {object} [opts]
 * @param {number} [opts.port=5280] HTTP (WebSocket) port inside the namespace
 * @param {string} [opts.parentDir=os.tmpdir()] where the run's scratch folder is made
 * @param {number} [opts.maxSeconds=600] hard bound on prosody's life (`timeout`), even if the test dies
 * @param {number} [opts.startTimeoutMs=20000]
 * @param {string} [opts.logLevel='debug'] prosody's log level (the log is kept on failure)
 * @returns {Promise<{wsUrl: string, domain: string, muc: string, focus: string, hostIp: string, ip: string,
 *   port: number, namespace: string, dir: string, logPath: string, log(): string, routes(): string,
 *   jitsiLink(room: string): string, stop(o?: {keepDir?: boolean}): Promise<void>}>}
 */
export async function startProsody(opts = {}) {
  const { port = 5280, parentDir = tmpdir(), maxSeconds = 600, startTimeoutMs = 20000, logLevel = 'debug' } = opts;
  if (process.getuid && process.getuid() !== 0) throw new Error('startProsody needs root (ip netns, runuser)');
  if (!existsSync(PROSODY)) throw new Error(`${PROSODY} missing: apt-get install prosody (listed in .ci/packages.txt)`);
  if (!existsSync(RUNUSER)) throw new Error(`${RUNUSER} missing (util-linux)`);
  const prosodyUser = userIds('prosody');
  if (!prosodyUser) throw new Error('no user "prosody": the Debian package creates it; reinstall prosody');
  sweepStaleProsody(parentDir);

  const id = `${process.pid}-${Math.floor(Math.random() * 1e6).toString(36)}`;
  const ns = `${NS_PREFIX}${id}`;
  const { hostIp, nsIp } = pickSubnet();
  // Interface names are limited to 15 characters.
  const tag = (process.pid % 100000).toString(36) + Math.floor(Math.random() * 1296).toString(36);
  const vethHost = `cxh${tag}`;
  const vethNs = `cxn${tag}`;

  const dir = mkdtempSync(join(parentDir, `${DIR_PREFIX}${process.pid}-`));
  const logPath = join(dir, 'prosody.log');
  const stdioPath = join(dir, 'stdio.log');
  writeConfig(dir, { ip: nsIp, port, logLevel });
  chownTree(dir, prosodyUser);

  const state = { ns, vethHost, dir, proc: null, stopped: false };
  cleanups.add(state);
  try {
    ip('netns', 'add', ns);
    ip('link', 'add', vethHost, 'type', 'veth', 'peer', 'name', vethNs);
    ip('link', 'set', vethNs, 'netns', ns);
    ip('addr', 'add', `${hostIp}/30`, 'dev', vethHost);
    ip('link', 'set', vethHost, 'up');
    ip('-n', ns, 'addr', 'add', `${nsIp}/30`, 'dev', vethNs);
    ip('-n', ns, 'link', 'set', vethNs, 'up');
    ip('-n', ns, 'link', 'set', 'lo', 'up');
    await waitFor(() => /LOWER_UP/.test(ipOut('-n', ns, '-o', 'link', 'show', vethNs)), 5000, `${vethNs} carrier`);

    // `timeout` bounds prosody's life even if this process dies without cleaning up;
    // runuser drops root (prosody refuses nothing as root, but needs none).
    const args = ['netns', 'exec', ns, 'timeout', '--kill-after=5', String(maxSeconds),
      RUNUSER, '-u', 'prosody', '--', PROSODY, '--config', join(dir, 'prosody.cfg.lua'), '-F'];
    const proc = spawn('ip', args, { stdio: ['ignore', 'pipe', 'pipe'], detached: true, cwd: dir });
    state.proc = proc;
    let stdio = '';
    const keep = (d) => { stdio += d; if (stdio.length > 100000) stdio = stdio.slice(-50000); };
    proc.stdout.on('data', keep);
    proc.stderr.on('data', keep);
    state.stdio = () => stdio;
    let exited = null;
    proc.on('exit', (code, signal) => { exited = { code, signal }; writeFileSync(stdioPath, stdio); });

    const wsHttpUrl = `http://${nsIp}:${port}/xmpp-websocket`;
    const deadline = Date.now() + startTimeoutMs;
    while (true) {
      if (exited) throw new Error(`prosody exited early (${JSON.stringify(exited)}): ${stdio.trim()}\n${tail(logPath)}`);
      if (Date.now() > deadline) throw new Error(`prosody did not answer ${wsHttpUrl} in ${startTimeoutMs} ms: ${stdio.trim()}\n${tail(logPath)}`);
      // mod_websocket answers a plain GET with a short page.
      const r = await httpGet(wsHttpUrl);
      if (r && r.status === 200 && /WebSocket/i.test(r.body)) break;
      await sleep(200);
    }
  } catch (e) {
    await stopState(state);
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }

  return {
    wsUrl: `ws://${nsIp}:${port}/xmpp-websocket`,
    domain: JITSI_DOMAIN,
    muc: JITSI_MUC,
    focus: JITSI_FOCUS,
    hostIp,
    ip: nsIp,
    port,
    namespace: ns,
    dir,
    logPath,
    /** prosody's log file, then what it printed. */
    log: () => `${existsSync(logPath) ? readFileSync(logPath, 'utf8') : '(no prosody log)'}\n-- stdout/stderr\n${state.stdio?.() ?? ''}`,
    /** The namespace's routes (`ip route show table all`): only the /30 link, no default route. */
    routes: () => ipOut('-n', ns, '-4', 'route', 'show', 'table', 'all') + ipOut('-n', ns, '-6', 'route', 'show', 'table', 'all'),
    /** The daemon's meeting link for `room` on this server (no key: Jitsi's E2EE keys come over Olm). */
    jitsiLink: (room) => `jitsi+ws://${nsIp}:${port}/${encodeURIComponent(room)}?domain=${JITSI_DOMAIN}`,
    stop: async ({ keepDir = false } = {}) => {
      await stopState(state);
      if (!keepDir) rmSync(dir, { recursive: true, force: true });
    },
  };
}

// ---------------------------------------------------------------- config

function writeConfig(dir, { ip: addr, port, logLevel }) {
  mkdirSync(join(dir, 'data'));
  mkdirSync(join(dir, 'plugins'));
  mkdirSync(join(dir, 'certs')); // none: plain WebSocket only
  // The focus stand-in, copied so that the prosody user reads it from its own folder.
  copyFileSync(join(PLUGIN_DIR, 'mod_fake_focus.lua'), join(dir, 'plugins', 'mod_fake_focus.lua'));
  writeFileSync(join(dir, 'prosody.cfg.lua'), `-- Generated by tests/e2e/lib/prosody.mjs for one test run.
pidfile = "${dir}/prosody.pid"
data_path = "${dir}/data"
plugin_paths = { "${dir}/plugins" }
certificates = "${dir}/certs"
interfaces = { "${addr}" }
local_interfaces = { "${addr}" }
c2s_ports = { }
s2s_ports = { }
component_ports = { }
http_ports = { ${port} }
http_interfaces = { "${addr}" }
https_ports = { }
https_interfaces = { }
c2s_require_encryption = false
consider_websocket_secure = true
modules_enabled = { "roster"; "saslauth"; "disco"; "ping"; "websocket"; "smacks"; }
modules_disabled = { "s2s"; "tls"; }
http_default_host = "${JITSI_DOMAIN}"
log = {
  { levels = { min = "${logLevel}" }, to = "file", filename = "${dir}/prosody.log" };
  { levels = { min = "error" }, to = "console" };
}

VirtualHost "${JITSI_DOMAIN}"
    authentication = "anonymous"

Component "${JITSI_MUC}" "muc"
    muc_room_locking = false
    muc_room_default_public_jids = true
    restrict_room_creation = false

-- Stand-in for jicofo: answers <conference xmlns='http://jitsi.org/protocol/focus'/> with ready='true'.
Component "${JITSI_FOCUS}" "fake_focus"
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
  teardownNamespace(state.ns, state.vethHost);
}

function killGroup(pid, signal) {
  try { process.kill(-pid, signal); } catch { /* already gone */ }
}

function teardownNamespace(ns, vethHost) {
  // Any process still in the namespace (a prosody that ignored SIGTERM) goes first.
  try {
    const pids = execFileSync('ip', ['netns', 'pids', ns], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })
      .split(/\s+/).filter(Boolean);
    for (const p of pids) { try { process.kill(Number(p), 'SIGKILL'); } catch { /* gone */ } }
  } catch { /* namespace gone */ }
  try { execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' }); } catch { /* gone */ }
  if (vethHost) { try { execFileSync('ip', ['link', 'del', vethHost], { stdio: 'ignore' }); } catch { /* went with the ns */ } }
}

/** Remove namespaces and scratch folders left behind by earlier runs whose process is dead. */
export function sweepStaleProsody(parentDir = tmpdir()) {
  for (const name of readdirSync(parentDir)) {
    const m = new RegExp(`^${DIR_PREFIX}(\\d+)-`).exec(name);
    if (m && Number(m[1]) !== process.pid && !isAlive(Number(m[1]))) rmSync(join(parentDir, name), { recursive: true, force: true });
  }
  let list = '';
  try { list = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' }); } catch { return; }
  for (const line of list.split('\n')) {
    const name = line.split(' ')[0];
    if (!name.startsWith(NS_PREFIX)) continue;
    const pid = Number(name.slice(NS_PREFIX.length).split('-')[0]);
    if (pid && pid !== process.pid && isAlive(pid)) continue;
    if (pid === process.pid && [...cleanups].some((s) => s.ns === name)) continue;
    teardownNamespace(name, null);
  }
}

function isAlive(pid) {
  try { process.kill(pid, 0); return true; } catch (e) { return e.code === 'EPERM'; }
}

function syncCleanupAll() {
  for (const s of cleanups) {
    if (s.proc) killGroup(s.proc.pid, 'SIGKILL');
    teardownNamespace(s.ns, s.vethHost);
    if (s.dir) rmSync(s.dir, { recursive: true, force: true });
  }
  cleanups.clear();
}
process.once('exit', syncCleanupAll);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.once(sig, () => { syncCleanupAll(); process.exit(1); });
}

/** A free /30 in 10.231.0.0/16, from 10.231.40.0/30 on (lib/janus.mjs starts at 10.231.7.0). */
function pickSubnet() {
  const used = execFileSync('ip', ['-4', '-o', 'addr'], { encoding: 'utf8' });
  for (let k = 0; k < 16384; k++) {
    const n = (40 * 64 + k) % 16384;
    const base = n * 4;
    const a = `10.231.${base >> 8}.${(base & 0xff) + 1}`;
    const b = `10.231.${base >> 8}.${(base & 0xff) + 2}`;
    if (!used.includes(` ${a}/`) && !used.includes(` ${b}/`)) return { hostIp: a, nsIp: b };
  }
  throw new Error('no free /30 in 10.231.0.0/16');
}

// ---------------------------------------------------------------- helpers

function userIds(name) {
  const line = readFileSync('/etc/passwd', 'utf8').split('\n').find((l) => l.startsWith(`${name}:`));
  if (!line) return null;
  const [, , uid, gid] = line.split(':');
  return { uid: Number(uid), gid: Number(gid) };
}

function chownTree(path, { uid, gid }) {
  chownSync(path, uid, gid);
  for (const e of readdirSync(path, { withFileTypes: true })) {
    const p = join(path, e.name);
    if (e.isDirectory()) chownTree(p, { uid, gid });
    else chownSync(p, uid, gid);
  }
}

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

function httpGet(url) {
  return new Promise((resolve) => {
    const req = http.get(url, { timeout: 1000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { if (body.length < 10000) body += d; });
      res.on('end', () => resolve({ status: res.statusCode, body }));
    });
    req.on('timeout', () => { req.destroy(); resolve(null); });
    req.on('error', () => resolve(null));
  });
}

function tail(path, lines = 40) {
  if (!existsSync(path)) return '(no prosody log)';
  return readFileSync(path, 'utf8').split('\n').slice(-lines).join('\n');
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
