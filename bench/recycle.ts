/**
 * Worker recycling under keep-alive load, 2 workers, against the floor: bare node:cluster with the same
 * hello world that forks a replacement, waits for `listening`, then closes the old worker
 * (apps/recycle-floor.js). One run, clusters one after the other, each started fresh:
 * 1. CPU per recycle: bare and the floor, cluster-steward without and with `recycle.maxAge` (minLifetime 0)
 *    at the same fast cadence (CPU_AGE, 1 s: dozens of recycles, so the per-request noise of a 30 s run
 *    stays far below the cost of a recycle), under wrk. Goal: extra CPU per recycle <= 1.15x the floor.
 * 2. Saturation with each worker replaced every AGE (10 s): throughput >= 0.95 of no recycling, p99 <= 2x,
 *    0 failed (wrk).
 * 3. Sent against answered, with recycling every AGE and without, for every client: autocannon (a fixed
 *    `--amount`), Node's http.Agent, Node's fetch (undici) and nginx in front (Debian's, HTTP/1.1 and
 *    keep-alive to the upstream; http.Agent as its client).
 * About 6 minutes; SECONDS, CLIENT_SECONDS, CONNECTIONS, AGE, CPU_AGE, AMOUNT and CLIENTS change it.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { loadavg } from 'node:os';
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
        ? await runWrk(url, CONNECTIONS, SECONDS)
        : client === 'autocannon'
          ? await runAutocannon(url, CONNECTIONS, CLIENT_SECONDS, AMOUNT)
          : await runNodeClient(client === 'fetch' ? 'fetch' : 'agent', url, CONNECTIONS, CLIENT_SECONDS);
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

// 1. CPU per recycle, at one fast cadence.
const bare = await measure('bare node:cluster', 'recycle-floor.js', floor(0), 'wrk');
const floorRun = await measure(`floor, every ${CPU_AGE} ms`, 'recycle-floor.js', floor(CPU_AGE), 'wrk');
const stewardBase = await measure('cluster-steward', 'recycle-app.js', steward(0), 'wrk');
const stewardFast = await measure(
  `cluster-steward, maxAge ${CPU_AGE} ms`,
  'recycle-app.js',
  steward(CPU_AGE),
  'wrk',
);
// 2. Saturation, each worker replaced every AGE.
const stewardSlow = await measure(`cluster-steward, maxAge ${AGE} ms`, 'recycle-app.js', steward(AGE), 'wrk');
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

const floorExtra = extraPerRecycle(floorRun, bare);
const stewardExtra = extraPerRecycle(stewardFast, stewardBase);
const cpuRatio = stewardExtra / floorExtra;
const rpsRatio = stewardSlow.load.rps / stewardBase.load.rps;
const p99Ratio = stewardSlow.load.p99Ms / stewardBase.load.p99Ms;
const met = (ok: boolean) => (ok ? 'met' : '**not met**');
const row = (m: Measured) =>
  `| ${m.client} | ${m.cluster} | ${m.load.sent ?? '–'} | ${m.load.requests} | ${lostRequests(m.load) ?? '–'} | ${m.load.errors} (${m.load.detail}) | ${Math.round(m.load.rps)} | ${m.load.p99Ms.toFixed(2)} | ${m.recycles} | ${cpuUs(m).toFixed(1)} |`;
const everyLost = [stewardSlow, ...clientRuns.flat()].reduce((sum, m) => sum + lost(m) + m.load.errors, 0);
const table = [
  `2 workers, ${CONNECTIONS} keep-alive connections; wrk runs ${SECONDS} s, the other clients ${CLIENT_SECONDS} s ` +
    `(autocannon: exactly ${AMOUNT} requests), each cluster started fresh and warmed up 2 s; cluster-steward ` +
    `\`recycle: { maxAge, minLifetime: 0 }\`; ${machineNote()}; load average (1, 5, 15 min) ` +
    `${loadBefore.map((n) => n.toFixed(2)).join(' ')} before, ${loadAfter.map((n) => n.toFixed(2)).join(' ')} after.`,
  '',
  '| client | cluster | sent | answered | lost | errors | req/s | p99 ms | recycles | CPU µs/request |',
  '| --- | --- | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: |',
  ...[bare, floorRun, stewardBase, stewardFast, stewardSlow, ...clientRuns.flat()].map(row),
  '',
  `- Extra CPU per recycle (every process of the cluster, from /proc, above the same requests without recycling): ` +
    `floor ${floorExtra.toFixed(3)} s, cluster-steward ${stewardExtra.toFixed(3)} s; ratio **${cpuRatio.toFixed(2)}** ` +
    `(goal <= 1.15: ${met(cpuRatio <= 1.15)}). Drain p50 ${percentile(stewardFast.drainMs, 50)} ms (floor ${percentile(floorRun.drainMs, 50)} ms).`,
  `- Each worker replaced every ${AGE / 1000} s under saturation (wrk): throughput ratio **${rpsRatio.toFixed(3)}** ` +
    `(goal >= 0.95: ${met(rpsRatio >= 0.95)}), p99 ratio **${p99Ratio.toFixed(2)}** (goal <= 2: ${met(p99Ratio <= 2)}), ` +
    `failed ${stewardSlow.load.errors} (goal 0: ${met(stewardSlow.load.errors === 0)}).`,
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
