// Faults for the recovery tests, on what startJanus (lib/janus.mjs) set up:
// Janus killed and started again from the same config folder (its rooms come
// from the config file, so the restarted Janus has the room again), and a
// namespace's link taken down and up. Needs root, like startJanus. Nothing
// here changes lib/janus.mjs: a restarted Janus runs in the same namespace,
// so the `stop()` startJanus returned still ends it (it kills every process
// left in the namespace).

import { spawn, execFileSync } from 'node:child_process';
import { readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import net from 'node:net';
import { sleep } from './janus.mjs';

const JANUS = '/usr/bin/janus';

/** The pid of the `janus` process in `namespace` (not the `timeout` wrapping it), or null. */
export function janusPid(namespace) {
  let pids = [];
  try {
    pids = execFileSync('ip', ['netns', 'pids', namespace], { encoding: 'utf8' }).split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return null;
  }
  for (const pid of pids) {
    try {
      if (readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'janus') return pid;
    } catch { /* gone */ }
  }
  return null;
}

/**
 * SIGKILLs Janus (no goodbye to anyone: sockets close as the kernel tears them down)
 * and waits until it is gone. @returns the time it was killed (Date.now()).
 */
export async function killJanus(janus) {
  const pid = janusPid(janus.namespace);
  if (!pid) throw new Error(`no janus process in ${janus.namespace}`);
  process.kill(pid, 'SIGKILL');
  const at = Date.now();
  const deadline = at + 5000;
  while (existsSync(`/proc/${pid}`) && readFileSync(`/proc/${pid}/stat`, 'utf8').split(' ')[2] !== 'Z') {
    if (Date.now() > deadline) throw new Error(`janus ${pid} still alive 5 s after SIGKILL`);
    await sleep(20);
  }
  return at;
}

/**
 * Starts Janus again in its namespace from the config folder startJanus wrote,
 * logging to `<dir>/janus-<n>.log`; resolves once its WebSocket accepts
 * connections. @returns {{reachableAt: number, logPath: string}}
 */
export async function restartJanus(janus, { maxSeconds = 120, startTimeoutMs = 20000, debugLevel = 4 } = {}) {
  const { hostname, port } = new URL(janus.wsUrl);
  janus.restarts = (janus.restarts ?? 0) + 1;
  const logPath = join(janus.dir, `janus-${janus.restarts + 1}.log`);
  const args = ['netns', 'exec', janus.namespace, 'timeout', '--kill-after=5', String(maxSeconds), JANUS,
    '-F', join(janus.dir, 'conf'), '-C', join(janus.dir, 'conf', 'janus.jcfg'),
    '-P', join(janus.dir, 'plugins'), '-L', logPath, '-N', '-o', '-D', '-d', String(debugLevel)];
  const proc = spawn('ip', args, { stdio: ['ignore', 'ignore', 'pipe'], detached: true });
  let stderr = '';
  proc.stderr.on('data', (d) => { stderr += d; });
  let exited = null;
  proc.on('exit', (code, signal) => { exited = { code, signal }; });
  // If this process dies first, the namespace's teardown (janus.stop or the next run's sweep) ends it.
  proc.unref();
  const deadline = Date.now() + startTimeoutMs;
  while (true) {
    if (exited) throw new Error(`restarted janus exited (${JSON.stringify(exited)}): ${stderr}`);
    if (Date.now() > deadline) throw new Error(`restarted janus did not open ${janus.wsUrl} in ${startTimeoutMs} ms`);
    if (await canConnect(hostname, Number(port))) return { reachableAt: Date.now(), logPath };
    await sleep(50);
  }
}

/** The one interface other than `lo` in `namespace` (the room's end of its veth pair). */
export function onlyLink(namespace) {
  const names = execFileSync('ip', ['-n', namespace, '-o', 'link', 'show'], { encoding: 'utf8' })
    .split('\n').map((l) => /^\d+:\s+([^:@]+)/.exec(l)?.[1]).filter((n) => n && n !== 'lo');
  if (names.length !== 1) throw new Error(`${namespace}: expected one link besides lo, found ${JSON.stringify(names)}`);
  return names[0];
}

/** `ip -n <namespace> link set <dev> up|down`. @returns the time it was done (Date.now()). */
export function setLink(namespace, dev, up) {
  execFileSync('ip', ['-n', namespace, 'link', 'set', dev, up ? 'up' : 'down'], { stdio: ['ignore', 'ignore', 'pipe'] });
  return Date.now();
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
