/**
 * Worker recycling under keep-alive load, 2 workers, against the floor: bare node:cluster with the same
 * hello world that forks a replacement, waits for `listening`, then closes the old worker
 * (apps/recycle-floor.js). One run, clusters one after the other, each started fresh:
 * 1. CPU per recycle: bare and the floor, cluster-steward without and with `recycle.maxAge` (minLifetime 0)
 *    at the same fast cadence (CPU_AGE, 1 s: dozens of recycles per run), under wrk, in ROUNDS rounds whose
 *    order rotates (a disturbance of the shared machine then hits a different cluster each round); the ratio
 *    is the median of the rounds' ratios. Goal: extra CPU per recycle <= 1.15x the floor. The same four
 *    clusters idle (no client) show what the recycle machinery alone costs.
 * 2. Saturation with each worker replaced every AGE (10 s), in ROUNDS rounds each beside a run without recycling
 *    (order rotating, medians): throughput >= 0.95 of no recycling, p99 <= 2x, 0 failed (wrk). The floor
 *    runs the same pair in each round: what a recycle at saturation costs any cluster on this machine.
 * 3. Sent against answered, with recycling every AGE and without, for every client: autocannon (a fixed
 *    `--amount`), Node's http.Agent, Node's fetch (undici) and nginx in front (Debian's, HTTP/1.1 and
 *    keep-alive to the upstream; http.Agent as its client).
 * About 16 minutes; SECONDS, CPU_SECONDS, ROUNDS, CLIENT_SECONDS, CONNECTIONS, AGE, CPU_AGE, AMOUNT and
 * CLIENTS change it.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { loadavg } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  benchDir,
  clusterCpuSeconds,
  freePort,
  type LoadResult,
  lostRequests,
  machineNote,
  runAutocannon,
  runNodeClient,
  runWrk,
  startNginx,
  writeBenchmarkSection,
} from './lib/load.js';

const SECONDS = Number(process.env.SECONDS ?? 30);
const CPU_SECONDS = Number(process.env.CPU_SECONDS ?? 20);
const ROUNDS = Number(process.env.ROUNDS ?? 3);
const CLIENT_SECONDS = Number(process.env.CLIENT_SECONDS ?? 20);
const CONNECTIONS = Number(process.env.CONNECTIONS ?? 50);
const AGE = Number(process.env.AGE ?? 10_000);
const CPU_AGE = Number(process.env.CPU_AGE ?? 1_000);
const AMOUNT = Number(process.env.AMOUNT ?? 600_000);
const CLIENTS = (process.env.CLIENTS ?? 'autocannon,agent,fetch,nginx').split(',').filter(Boolean);

interface Recycles {
  /** Started and not yet done or aborted. */
  inProgress: number;
  done: number;
  killed: number;
  aborted: number;
  drainMs: number[];
  bootMs: number[];
}

interface Cluster {
  name: string;
  port: number;
  url: string;
  recycles: Recycles;
  pid: number;
  stop(): Promise<void>;
}

/**
 * Starts a bench app and resolves once both workers are ready; counts recycles from its log lines.
 * `recycle` (cluster-steward's `recycle` options) or `age` (the floor's) absent: no recycling.
 */
async function startCluster(
  name: string,
  app: 'recycle-app.js' | 'recycle-floor.js',
  env: Record<string, string>,
): Promise<Cluster> {
  const port = await freePort();
  const childEnv: Record<string, string> = { ...process.env, PORT: String(port), ...env } as Record<
    string,
    string
  >;
  delete childEnv.STEWARD_LOG_LEVEL;
  const child = spawn(process.execPath, [`${benchDir}apps/${app}`], {
    env: childEnv,
    stdio: ['ignore', 'pipe', 'inherit'],
    detached: true,
  });
  const recycles: Recycles = { inProgress: 0, done: 0, killed: 0, aborted: 0, drainMs: [], bootMs: [] };
  let ready = 0;
  let buffered = '';
  await new Promise<void>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`${app} exited with ${code} before it was ready`)));
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      buffered += chunk;
      const lines = buffered.split('\n');
      buffered = lines.pop()!;
      for (const raw of lines) {
        const line = JSON.parse(raw) as Record<string, unknown>;
        if (line.msg === 'worker:ready' && ++ready === 2) resolve();
        countRecycle(recycles, line);
      }
    });
  });
  const url = `http://127.0.0.1:${port}/`;
  return { name, port, url, recycles, pid: child.pid!, stop: () => stopGroup(child) };
}

function countRecycle(recycles: Recycles, line: Record<string, unknown>): void {
  if (line.msg === 'worker:recycle:start') recycles.inProgress++;
  if (line.msg === 'worker:recycle:aborted') {
    recycles.aborted++;
    recycles.inProgress--;
  }
  if (line.msg !== 'worker:recycle:done') return;
  recycles.inProgress--;
  recycles.done++;
  if (line.code !== 0) recycles.killed++;
  recycles.drainMs.push(line.drainMs as number);
  recycles.bootMs.push(line.bootMs as number);
}

async function stopGroup(child: ChildProcess): Promise<void> {
  const exited = once(child, 'exit');
  process.kill(-child.pid!, 'SIGTERM');
  const timer = setTimeout(() => process.kill(-child.pid!, 'SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}

type Client = 'wrk' | 'autocannon' | 'agent' | 'fetch' | 'nginx';

interface Measured {
  cluster: string;
  client: Client;
  load: LoadResult;
  /** Cluster CPU seconds during the load (every process, exited workers included). */
  cpuSeconds: number;
  /** Recycles completed during the load. */
  recycles: number;
  drainMs: number[];
}

/** Starts a cluster, warms it up (JIT, both workers accepting), loads it once with `client`, stops it. */
async function measure(
  name: string,
  app: 'recycle-app.js' | 'recycle-floor.js',
  env: Record<string, string>,
  client: Client,
  seconds = client === 'wrk' ? SECONDS : CLIENT_SECONDS,
): Promise<Measured> {
  const cluster = await startCluster(name, app, env);
  const proxy = client === 'nginx' ? await startNginx(cluster.port) : undefined;
  try {
    const url = proxy?.url ?? cluster.url;
    await runWrk(url, CONNECTIONS, 2);
    const doneBefore = cluster.recycles.done;
    const cpuBefore = clusterCpuSeconds(cluster.pid);
    const load =
      client === 'wrk'
        ? await runWrk(url, CONNECTIONS, seconds)
        : client === 'autocannon'
          ? await runAutocannon(url, CONNECTIONS, seconds, AMOUNT)
          : await runNodeClient(client === 'fetch' ? 'fetch' : 'agent', url, CONNECTIONS, seconds);
    const cpuSeconds = clusterCpuSeconds(cluster.pid) - cpuBefore;
    const { done, drainMs } = cluster.recycles;
    const measured = {
      cluster: name,
      client,
      load,
      cpuSeconds,
      recycles: done - doneBefore,
      drainMs: drainMs.slice(doneBefore),
    };
    const sent = load.sent === undefined ? '' : `, sent ${load.sent}`;
    console.log(
      `${client} ${name}: ${load.requests} answered${sent}, ${Math.round(load.rps)} req/s, p99 ${load.p99Ms.toFixed(2)} ms, ` +
        `errors ${load.errors} (${load.detail}), ${measured.recycles} recycles, ${cpuSeconds.toFixed(2)} CPU-s`,
    );
    return measured;
  } finally {
    await proxy?.stop();
    await cluster.stop();
  }
}

/** Cluster CPU seconds and recycles over `seconds` with no client: what recycling costs by itself. */
async function measureIdle(
  name: string,
  app: 'recycle-app.js' | 'recycle-floor.js',
  env: Record<string, string>,
  seconds: number,
): Promise<{ cpuSeconds: number; recycles: number }> {
  const cluster = await startCluster(name, app, env);
  try {
    const doneBefore = cluster.recycles.done;
    const cpuBefore = clusterCpuSeconds(cluster.pid);
    await sleep(seconds * 1000);
    return {
      cpuSeconds: clusterCpuSeconds(cluster.pid) - cpuBefore,
      recycles: cluster.recycles.done - doneBefore,
    };
  } finally {
    await cluster.stop();
  }
}

function percentile(values: number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

// Both variables are always set: one inherited from the shell must not turn a baseline into a recycling run.
const steward = (age: number): Record<string, string> => ({
  AGE: '0',
  RECYCLE: age ? JSON.stringify({ maxAge: age, minLifetime: 0 }) : '',
});
const floor = (age: number): Record<string, string> => ({ AGE: String(age), RECYCLE: '' });
const lost = (m: Measured): number => lostRequests(m.load) ?? 0;
const cpuUs = (m: Measured): number => (m.cpuSeconds * 1e6) / m.load.requests;
/** CPU seconds per recycle above what the same requests cost without recycling. */
const extraPerRecycle = (run: Measured, base: Measured): number =>
  ((cpuUs(run) - cpuUs(base)) * run.load.requests) / 1e6 / run.recycles;

const loadBefore = loadavg();
console.log(`load average before: ${loadBefore.map((n) => n.toFixed(2)).join(' ')}`);

// 1. CPU per recycle, at one fast cadence, in rounds whose order rotates.
interface CpuRound {
  bare: Measured;
  floor: Measured;
  stewardBase: Measured;
  stewardFast: Measured;
}
const cpuRuns: Array<() => Promise<[keyof CpuRound, Measured]>> = [
  async () => ['bare', await measure('bare node:cluster', 'recycle-floor.js', floor(0), 'wrk', CPU_SECONDS)],
  async () => [
    'floor',
    await measure(`floor, every ${CPU_AGE} ms`, 'recycle-floor.js', floor(CPU_AGE), 'wrk', CPU_SECONDS),
  ],
  async () => [
    'stewardBase',
    await measure('cluster-steward', 'recycle-app.js', steward(0), 'wrk', CPU_SECONDS),
  ],
  async () => [
    'stewardFast',
    await measure(
      `cluster-steward, maxAge ${CPU_AGE} ms`,
      'recycle-app.js',
      steward(CPU_AGE),
      'wrk',
      CPU_SECONDS,
    ),
  ],
];
const cpuRounds: CpuRound[] = [];
for (let round = 0; round < ROUNDS; round++) {
  const measured: Partial<CpuRound> = {};
  for (let i = 0; i < cpuRuns.length; i++) {
    const [key, m] = await cpuRuns[(i + round) % cpuRuns.length]!();
    measured[key] = m;
  }
  cpuRounds.push(measured as CpuRound);
}
const idleFloor = [
  await measureIdle('floor, idle', 'recycle-floor.js', floor(0), CPU_SECONDS),
  await measureIdle('floor, idle', 'recycle-floor.js', floor(CPU_AGE), CPU_SECONDS),
];
const idleSteward = [
  await measureIdle('cluster-steward, idle', 'recycle-app.js', steward(0), CPU_SECONDS),
  await measureIdle('cluster-steward, idle', 'recycle-app.js', steward(CPU_AGE), CPU_SECONDS),
];
// 2. Saturation, each worker replaced every AGE, against no recycling in the same round, and the floor doing
// the same beside it (order rotating): two runs minutes apart on a shared machine compare whatever else ran in
// between, and the floor says what a recycle at saturation costs any cluster on this machine.
interface SaturationRound {
  base: Measured;
  slow: Measured;
  floorBase: Measured;
  floorSlow: Measured;
  rpsRatio: number;
  p99Ratio: number;
  floorRpsRatio: number;
}
const saturationRuns: Array<() => Promise<[keyof SaturationRound, Measured]>> = [
  async () => ['base', await measure('cluster-steward', 'recycle-app.js', steward(0), 'wrk')],
  async () => [
    'slow',
    await measure(`cluster-steward, maxAge ${AGE} ms`, 'recycle-app.js', steward(AGE), 'wrk'),
  ],
  async () => ['floorBase', await measure('bare node:cluster', 'recycle-floor.js', floor(0), 'wrk')],
  async () => ['floorSlow', await measure(`floor, every ${AGE} ms`, 'recycle-floor.js', floor(AGE), 'wrk')],
];
const saturationRounds: SaturationRound[] = [];
for (let round = 0; round < ROUNDS; round++) {
  const measured: Partial<Record<keyof SaturationRound, Measured>> = {};
  for (let i = 0; i < saturationRuns.length; i++) {
    const [key, m] = await saturationRuns[(i + round) % saturationRuns.length]!();
    measured[key] = m;
  }
  const { base, slow, floorBase, floorSlow } = measured as Record<
    'base' | 'slow' | 'floorBase' | 'floorSlow',
    Measured
  >;
  saturationRounds.push({
    base,
    slow,
    floorBase,
    floorSlow,
    rpsRatio: slow.load.rps / base.load.rps,
    p99Ratio: slow.load.p99Ms / base.load.p99Ms,
    floorRpsRatio: floorSlow.load.rps / floorBase.load.rps,
  });
}
const bySaturation = [...saturationRounds].sort((a, b) => a.rpsRatio - b.rpsRatio);
const saturation = bySaturation[Math.floor(bySaturation.length / 2)]!;
const stewardSlow = saturation.slow;
const saturationFailed = saturationRounds.reduce((sum, r) => sum + r.slow.load.errors, 0);
// 3. Every client, with and without recycling.
const clientRuns: Array<[Measured, Measured]> = [];
for (const client of CLIENTS as Client[]) {
  clientRuns.push([
    await measure('cluster-steward', 'recycle-app.js', steward(0), client),
    await measure(`cluster-steward, maxAge ${AGE} ms`, 'recycle-app.js', steward(AGE), client),
  ]);
}
const loadAfter = loadavg();
console.log(`load average after: ${loadAfter.map((n) => n.toFixed(2)).join(' ')}`);

const roundFigures = cpuRounds.map((r) => {
  const floorExtra = extraPerRecycle(r.floor, r.bare);
  const stewardExtra = extraPerRecycle(r.stewardFast, r.stewardBase);
  return { ...r, floorExtra, stewardExtra, ratio: stewardExtra / floorExtra };
});
const medianRound = [...roundFigures].sort((a, b) => a.ratio - b.ratio)[Math.floor(roundFigures.length / 2)]!;
const { stewardBase, floorExtra, stewardExtra, ratio: cpuRatio } = medianRound;
const idleExtra = ([base, run]: Array<{ cpuSeconds: number; recycles: number }>) =>
  (run!.cpuSeconds - base!.cpuSeconds) / run!.recycles;
const idleRatio = idleExtra(idleSteward) / idleExtra(idleFloor);
const { rpsRatio } = saturation;
const floorRpsRatio = [...saturationRounds].map((r) => r.floorRpsRatio).sort((a, b) => a - b)[
  Math.floor(saturationRounds.length / 2)
]!;
const p99Ratio = [...saturationRounds].map((r) => r.p99Ratio).sort((a, b) => a - b)[
  Math.floor(saturationRounds.length / 2)
]!;
const met = (ok: boolean) => (ok ? 'met' : '**not met**');
const row = (m: Measured) =>
  `| ${m.client} | ${m.cluster} | ${m.load.sent ?? '–'} | ${m.load.requests} | ${lostRequests(m.load) ?? '–'} | ${m.load.errors} (${m.load.detail}) | ${Math.round(m.load.rps)} | ${m.load.p99Ms.toFixed(2)} | ${m.recycles} | ${cpuUs(m).toFixed(1)} |`;
const everyLost = [...saturationRounds.flatMap((r) => [r.base, r.slow]), ...clientRuns.flat()].reduce(
  (sum, m) => sum + lost(m) + m.load.errors,
  0,
);
const table = [
  `2 workers, ${CONNECTIONS} keep-alive connections; wrk runs ${SECONDS} s (${CPU_SECONDS} s in the CPU rounds), the other clients ${CLIENT_SECONDS} s ` +
    `(autocannon: exactly ${AMOUNT} requests), each cluster started fresh and warmed up 2 s; cluster-steward ` +
    `\`recycle: { maxAge, minLifetime: 0 }\`; ${machineNote()}; load average (1, 5, 15 min) ` +
    `${loadBefore.map((n) => n.toFixed(2)).join(' ')} before, ${loadAfter.map((n) => n.toFixed(2)).join(' ')} after.`,
  '',
  '| client | cluster | sent | answered | lost | errors | req/s | p99 ms | recycles | CPU µs/request |',
  '| --- | --- | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: |',
  ...[
    medianRound.bare,
    medianRound.floor,
    stewardBase,
    medianRound.stewardFast,
    saturation.base,
    stewardSlow,
    ...clientRuns.flat(),
  ].map(row),
  '',
  `Extra CPU per recycle (every process of the cluster, from /proc, above the same requests without recycling), ` +
    `wrk ${CPU_SECONDS} s per cluster, ${ROUNDS} rounds in rotated order (the table above shows the median round's runs):`,
  '',
  '| round | bare CPU µs/request | floor extra CPU-s per recycle (recycles) | cluster-steward CPU µs/request | cluster-steward extra CPU-s per recycle (recycles) | ratio |',
  '| ---: | ---: | ---: | ---: | ---: | ---: |',
  ...roundFigures.map(
    (r, i) =>
      `| ${i + 1} | ${cpuUs(r.bare).toFixed(1)} | ${r.floorExtra.toFixed(3)} (${r.floor.recycles}) | ${cpuUs(r.stewardBase).toFixed(1)} | ${r.stewardExtra.toFixed(3)} (${r.stewardFast.recycles}) | ${r.ratio.toFixed(2)} |`,
  ),
  `| idle | – | ${idleExtra(idleFloor).toFixed(3)} (${idleFloor[1]!.recycles}) | – | ${idleExtra(idleSteward).toFixed(3)} (${idleSteward[1]!.recycles}) | ${idleRatio.toFixed(2)} |`,
  '',
  `- Extra CPU per recycle under load, median of the rounds: floor ${floorExtra.toFixed(3)} s, cluster-steward ` +
    `${stewardExtra.toFixed(3)} s; ratio **${cpuRatio.toFixed(2)}** (goal <= 1.15: ${met(cpuRatio <= 1.15)}; rounds ` +
    `${roundFigures.map((r) => r.ratio.toFixed(2)).join(', ')}). Idle, the recycle machinery alone: ratio ${idleRatio.toFixed(2)}. ` +
    `Drain p50 ${percentile(medianRound.stewardFast.drainMs, 50)} ms (floor ${percentile(medianRound.floor.drainMs, 50)} ms).`,
  `- Each worker replaced every ${AGE / 1000} s under saturation (wrk ${SECONDS} s, against no recycling in the same round, ` +
    `${ROUNDS} rounds in rotating order with the floor's pair, medians; the table shows the median round's pair): throughput ratio **${rpsRatio.toFixed(3)}** ` +
    `(goal >= 0.95: ${met(rpsRatio >= 0.95)}; rounds ${saturationRounds.map((r) => r.rpsRatio.toFixed(3)).join(', ')}), ` +
    `p99 ratio **${p99Ratio.toFixed(2)}** (goal <= 2: ${met(p99Ratio <= 2)}; rounds ${saturationRounds.map((r) => r.p99Ratio.toFixed(2)).join(', ')}), ` +
    `failed ${saturationFailed} (goal 0: ${met(saturationFailed === 0)}). The floor in the same rounds: throughput ratio ` +
    `${floorRpsRatio.toFixed(3)} (rounds ${saturationRounds.map((r) => r.floorRpsRatio.toFixed(3)).join(', ')}), ` +
    `${saturationRounds.reduce((sum, r) => sum + r.floorSlow.load.errors, 0)} requests failed (it closes the old worker at once).`,
  ...clientRuns.map(
    ([base, run]) =>
      `- ${run.client}: ${run.recycles} recycles, lost **${lost(run)}** of ${run.load.sent ?? run.load.requests} ` +
      `(without recycling ${lost(base)} of ${base.load.sent ?? base.load.requests}), errors ${run.load.errors}.`,
  ),
  '',
  `Every request sent was answered, with and without recycling, for every client: **${everyLost === 0 ? 'yes' : 'NO'}**.`,
].join('\n');
console.log(`\n${table}`);
writeBenchmarkSection('recycle', table);
if (everyLost > 0) process.exitCode = 1;
