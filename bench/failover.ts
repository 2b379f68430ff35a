/** Downtime of the services after kill -9 of the sibling, against the start-up floor of a forked node process. */
import { fork, spawn } from 'node:child_process';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { benchDir, freePort, machineNote, median, writeBenchmarkSection } from './lib/load.js';

const ROUNDS = 8;
/** Goal: services back after `kill -9` within twice node's own start-up (the fork floor). */
const GOAL_RATIO = 2;

const percentile = (values: number[], p: number) =>
  [...values].sort((a, b) => a - b)[Math.min(values.length - 1, Math.floor(values.length * p))]!;

/** Baseline: fork → first IPC message of a child that does nothing else (node's own start-up). */
async function measureForkFloor(): Promise<number[]> {
  const entry = join(tmpdir(), `steward-fork-floor-${process.pid}.mjs`);
  writeFileSync(entry, "process.send('ready'); process.disconnect();\n");
  const times: number[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    const started = performance.now();
    // No execArgv: this bench runs under tsx, the app's sibling does not.
    const child = fork(entry, [], { stdio: 'ignore', execArgv: [] });
    await once(child, 'message');
    times.push(performance.now() - started);
    await once(child, 'exit');
  }
  return times;
}

interface Failover {
  /** kill -9 → the primary logs every service running in the new sibling, as seen by this process. */
  observedMs: number;
  /** The primary's own figure: its death notice → the new sibling reported every service running. */
  primaryMs: number;
}

async function measureFailover(services: string): Promise<Failover[]> {
  const child = spawn(process.execPath, [`${benchDir}apps/failover-app.js`], {
    env: { ...process.env, PORT: String(await freePort()), SERVICES: services },
    stdio: ['ignore', 'pipe', 'inherit'],
    detached: true,
  });
  const running: Array<{ line: Record<string, unknown>; at: number }> = [];
  let buffered = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    buffered += chunk;
    const parts = buffered.split('\n');
    buffered = parts.pop()!;
    for (const part of parts) {
      if (!part.includes('"services:running"')) continue;
      running.push({ line: JSON.parse(part), at: performance.now() });
    }
  });
  const waitRunning = async (count: number) => {
    const deadline = Date.now() + 20_000;
    while (running.length < count) {
      if (Date.now() > deadline) throw new Error('services did not run again');
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    return running[count - 1]!;
  };
  const results: Failover[] = [];
  try {
    for (let round = 1; round <= ROUNDS; round++) {
      const current = await waitRunning(round);
      // Beyond `restart.period`: each kill is a first death, as in production between rare crashes.
      await new Promise((resolve) => setTimeout(resolve, 1_200));
      const killedAt = performance.now();
      process.kill(current.line.siblingPid as number, 'SIGKILL');
      const next = await waitRunning(round + 1);
      results.push({ observedMs: next.at - killedAt, primaryMs: next.line.sinceDeathMs as number });
    }
  } finally {
    process.kill(-child.pid!, 'SIGTERM');
    await once(child, 'exit');
  }
  return results;
}

const loadBefore = loadavg()[0]!.toFixed(1);
console.log(`load average before: ${loadBefore}`);
const floor = await measureForkFloor();
const light = (await measureFailover('memory-services.js')).map((f) => f.observedMs);
const full = (await measureFailover('memory-services-full.js')).map((f) => f.observedMs);
const floorMedian = median(floor);
const row = (name: string, values: number[]) =>
  `| ${name} | ${median(values).toFixed(0)} | ${percentile(values, 0.95).toFixed(0)} | ${Math.max(...values).toFixed(0)} | ${(median(values) / floorMedian).toFixed(2)} |`;
const worst = Math.max(...light, ...full);
const loadAfter = loadavg()[0]!.toFixed(1);
const verdict = (values: number[]) => {
  const ratio = median(values) / floorMedian;
  return `**${ratio.toFixed(2)}** (${ratio <= GOAL_RATIO ? 'met' : 'not met'})`;
};
const body = `${ROUNDS} rounds of \`kill -9\` on the services sibling (two listener-like services) per variant, each
kill spaced beyond \`restart.period\` so it is a first death; downtime from the kill to the primary's
\`services:running\` log of the new sibling; ${machineNote()}. Baseline: \`fork()\` of a node process that only
sends one IPC message (node's own start-up), measured in the same run.

| measure | median ms | p95 ms | max ms | ratio to fork floor |
| --- | ---: | ---: | ---: | ---: |
${row('fork floor (bare node child, first IPC message)', floor)}
${row("kill -9 → running, module imports 'cluster-steward/services'", light)}
${row("kill -9 → running, module imports 'cluster-steward'", full)}

One-minute load average ${loadBefore} before, ${loadAfter} after. The sibling is re-forked at once on a
first death; its downtime beyond the floor is loading the services module and the host, and the first
status report. prom-client and the metric families load only after the services started, and the package
entry loads the standalone runner's control server only when \`runServices\` is called, so a services
module importing the whole \`cluster-steward\` entry costs little more than the \`cluster-steward/services\`
subpath (which exports only \`defineServices\` and the types).

Goal: median downtime ≤ ${GOAL_RATIO}× the fork floor: \`cluster-steward/services\` ${verdict(light)},
\`cluster-steward\` ${verdict(full)}. Services running again within 1 s of a \`kill -9\`:
**${worst < 1_000 ? 'met' : 'not met'}** (worst of ${2 * ROUNDS}: ${worst.toFixed(0)} ms).`;
console.log(body);
writeBenchmarkSection('services-failover', body);
