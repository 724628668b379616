// CPU and memory of a process tree from /proc, for the benchmarks:
// utime+stime ticks (USER_HZ 100) and PSS from smaps_rollup, summed over the
// process and its descendants.
import { readFileSync, readdirSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

export const TICK = 100; // USER_HZ

function children() {
  const map = new Map();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const ppid = Number(rest[1]);
      if (!map.has(ppid)) map.set(ppid, []);
      map.get(ppid).push(Number(d));
    } catch { /* gone */ }
  }
  return map;
}

export function tree(pid) {
  const kids = children();
  const out = [pid];
  for (let i = 0; i < out.length; i++) out.push(...(kids.get(out[i]) ?? []));
  return out;
}

export function cpuTicks(pids) {
  let t = 0;
  for (const p of pids) {
    try {
      const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
      const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      t += Number(rest[11]) + Number(rest[12]); // utime, stime
    } catch { /* gone */ }
  }
  return t;
}

export function pssKb(pids) {
  let kb = 0;
  for (const p of pids) {
    try {
      const m = /^Pss:\s+(\d+) kB/m.exec(readFileSync(`/proc/${p}/smaps_rollup`, 'utf8'));
      if (m) kb += Number(m[1]);
    } catch { /* gone */ }
  }
  return kb;
}

/** CPU % of one core and mean PSS of a process tree over `ms`. */
export async function measure(rootPid, ms) {
  const pids0 = tree(rootPid);
  const c0 = cpuTicks(pids0);
  const t0 = Date.now();
  const pss = [];
  while (Date.now() - t0 < ms) {
    pss.push(pssKb(tree(rootPid)));
    await sleep(1000);
  }
  const c1 = cpuTicks(tree(rootPid));
  const seconds = (Date.now() - t0) / 1000;
  return { cpuPercent: ((c1 - c0) / TICK / seconds) * 100, pssMb: pss.reduce((a, b) => a + b, 0) / pss.length / 1024, processes: tree(rootPid).length };
}

