// Logs kept when an end-to-end test fails: Janus's log, the pages' logs and
// any extra logs (e.g. the daemon's), under tests/e2e/artifacts/ (ignored by git).
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ARTIFACTS =
  process.env.CLOAKROOM_E2E_ARTIFACTS || join(dirname(fileURLToPath(import.meta.url)), '..', 'artifacts');

/** Writes the logs of a failed test and appends their location to the error's message. */
export async function keepFailureLogs(error, { prefix, name, janus, participants, extra = {} }) {
  mkdirSync(ARTIFACTS, { recursive: true });
  const base = join(ARTIFACTS, `${Date.now()}-${prefix}${name.replace(/\W+/g, '-').slice(0, 40)}`);
  writeFileSync(`${base}-janus.log`, janus?.log() ?? '');
  for (const [suffix, text] of Object.entries(extra)) writeFileSync(`${base}-${suffix}.log`, text);
  const pages = [];
  for (const p of participants) {
    const stats = await p.stats().catch(() => ({ log: [] }));
    pages.push(`== ${p.display}\n${stats.log?.join('\n')}\n${p.console.join('\n')}`);
  }
  writeFileSync(`${base}-pages.log`, pages.join('\n\n'));
  error.message += `\n(logs kept in ${base}-*.log)`;
}
