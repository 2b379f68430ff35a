/**
 * V8 sizes the sibling's heap for its memory, not its throughput. It relays events (to the workers or to
 * its handlers), which keeps a few objects alive across every scavenge, and under the default heuristics
 * that grows the young generation to 32 MiB and the old one with it (bench/valve-memory.ts): about 34 MiB
 * above a bare node process, against 24 to 26 in this mode.
 *
 * The mode is switched on once the services run rather than with `--optimize-for-size` on the command line,
 * which cost 10 to 12 ms of every start (a flag there makes Node 20 compile its built-in modules from
 * source), so of the services' downtime after a crash. Set now, `--optimize-for-size` still makes every
 * full collection reduce memory and grow the old generation in its smallest steps, but the young
 * generation was sized at start: a growth factor of 1 keeps it at the size it has.
 *
 * Node warns that V8 flags changed at run time may do nothing or worse; these two are read afresh each time
 * the collector sizes a space (and `--optimize-for-size` by the optimizing compiler, which then favours
 * smaller code), and test/sibling-memory-mode.test.ts checks that they take. An `--optimize-for-size` or
 * `--no-optimize-for-size` in the application's own flags (`execArgv` or `NODE_OPTIONS`) is left as given.
 */
export async function saveMemory(flags: readonly string[] = applicationFlags()): Promise<boolean> {
  if (flags.some((flag) => /^--(no-)?optimize[-_]for[-_]size/.test(flag))) return false;
  const { setFlagsFromString } = await import('node:v8');
  setFlagsFromString('--optimize-for-size');
  setFlagsFromString('--semi-space-growth-factor=1');
  return true;
}

/** The flags this process was started with: its command line's and `NODE_OPTIONS`'s. */
function applicationFlags(): string[] {
  return [...process.execArgv, ...(process.env.NODE_OPTIONS ?? '').split(/\s+/).filter(Boolean)];
}
