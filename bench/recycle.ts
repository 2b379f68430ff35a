/**
 * Worker recycling under keep-alive load: 2 workers, maxRequests small enough for dozens of recycles,
 * against the same load with no recycling, with autocannon and with wrk (plus a larger limit with wrk).
 * Goals: 0 failed requests, throughput ratio >= 0.9, p99 ratio <= 2. The clusters run side by side and
 * take the load in alternating 10 s slices, so a machine whose load drifts hurts both alike; slices go
 * on until each cluster had >= SECONDS (30) of load and the recycling one >= 60 recycles, or MAX_SECONDS
 * (90). About 3 to 8 minutes; SECONDS, MAX_SECONDS, SLICE, CONNECTIONS, MAX_REQUESTS,
 * LARGE_MAX_REQUESTS (0: skip), CONCURRENCY and TOOLS (autocannon,wrk) change it.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { loadavg } from 'node:os';
import {
  benchDir,
  clusterCpuSeconds,
  freePort,
  type LoadResult,
  machineNote,
  median,
  runAutocannon,
  runWrk,
  writeBenchmarkSection,
} from './lib/load.js';

const SECONDS = Number(process.env.SECONDS ?? 30);
const MAX_SECONDS = Number(process.env.MAX_SECONDS ?? 90);
const SLICE = Number(process.env.SLICE ?? 10);
const CONNECTIONS = Number(process.env.CONNECTIONS ?? 50);
const MAX_REQUESTS = Number(process.env.MAX_REQUESTS ?? 1_000);
const MIN_RECYCLES = 60;
// Both workers may be replaced at once: a replacement's boot, not the drain, bounds the recycle rate.
const CONCURRENCY = Number(process.env.CONCURRENCY ?? 2);
const LARGE_MAX_REQUESTS = Number(process.env.LARGE_MAX_REQUESTS ?? 100_000);
const TOOLS = (process.env.TOOLS ?? 'autocannon,wrk').split(',') as Array<'autocannon' | 'wrk'>;

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
  url: string;
  recycles: Recycles;
  slices: LoadResult[];
  /** CPU seconds used by the primary and all its workers (live and exited) during the slices. */
  cpuSeconds: number;
  pid: number;
  stop(): Promise<void>;
}

/** Starts the bench app and resolves once both workers are ready; counts recycles from its pino lines. */
async function startCluster(name: string, recycle: Record<string, unknown> | undefined): Promise<Cluster> {
  const port = await freePort();
  const env: Record<string, string> = { ...process.env, PORT: String(port) } as Record<string, string>;
  delete env.STEWARD_LOG_LEVEL;
  if (recycle) env.RECYCLE = JSON.stringify(recycle);
  const child = spawn(process.execPath, [`${benchDir}apps/recycle-app.js`], {
    env,
    stdio: ['ignore', 'pipe', 'inherit'],
    detached: true,
  });
  const recycles: Recycles = { inProgress: 0, done: 0, killed: 0, aborted: 0, drainMs: [], bootMs: [] };
  let ready = 0;
  let buffered = '';
  await new Promise<void>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`bench app exited with ${code} before it was ready`)));
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
  return { name, url, recycles, slices: [], cpuSeconds: 0, pid: child.pid!, stop: () => stopGroup(child) };
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

/** Loads the clusters in turn, one slice each per round, until every goal of duration is reached. */
async function runSlices(tool: 'autocannon' | 'wrk', clusters: Cluster[]): Promise<void> {
  const load = tool === 'wrk' ? runWrk : runAutocannon;
  // Warm-up: JIT, connections spread over both workers; recycles from here on are not counted.
  for (const cluster of clusters) await load(cluster.url, CONNECTIONS, 2);
  const counted = clusters.map((cluster) => cluster.recycles.done);
  const recycling = clusters[1]!;
  for (let elapsed = SLICE; ; elapsed += SLICE) {
    for (const cluster of clusters) {
      const cpuBefore = clusterCpuSeconds(cluster.pid);
      cluster.slices.push(await load(cluster.url, CONNECTIONS, SLICE));
      await settled(cluster);
      cluster.cpuSeconds += clusterCpuSeconds(cluster.pid) - cpuBefore;
    }
    const recycled = recycling.recycles.done - counted[1]!;
    console.log(`${tool}: ${elapsed} s per cluster, ${recycled} recycles`);
    if (elapsed >= MAX_SECONDS || (elapsed >= SECONDS && recycled >= MIN_RECYCLES)) break;
  }
  clusters.forEach((cluster, i) => {
    const { recycles } = cluster;
    const from = counted[i]!;
    cluster.recycles = {
      ...recycles,
      done: recycles.done - from,
      drainMs: recycles.drainMs.slice(from),
      bootMs: recycles.bootMs.slice(from),
    };
  });
}

/** Waits for the recycles a slice started, so no replacement boots during the next cluster's slice. */
async function settled(cluster: Cluster): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (cluster.recycles.inProgress > 0 && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

interface Summary {
  requests: number;
  rps: number;
  /** Median of the slices' p99. */
  p99Ms: number;
  failed: number;
  detail: string;
  /** Cluster CPU microseconds per request. */
  cpuUs: number;
}

function summarize(cluster: Cluster): Summary {
  const { slices } = cluster;
  const requests = slices.reduce((sum, slice) => sum + slice.requests, 0);
  const failed = slices.reduce((sum, slice) => sum + slice.errors, 0);
  const details = [...new Set(slices.filter((slice) => slice.errors > 0).map((slice) => slice.detail))];
  return {
    requests,
    rps: slices.reduce((sum, slice) => sum + slice.rps, 0) / slices.length,
    p99Ms: median(slices.map((slice) => slice.p99Ms)),
    failed,
    detail: failed === 0 ? 'none' : details.join('; '),
    cpuUs: (cluster.cpuSeconds * 1e6) / requests,
  };
}

function percentile(values: number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

const recycle = { maxRequests: MAX_REQUESTS, minLifetime: 0, concurrency: CONCURRENCY };
/** A limit nearer real use: a recycle every few seconds instead of several a second. */
const largeRecycle = { ...recycle, maxRequests: LARGE_MAX_REQUESTS };
const loadBefore = loadavg()[0]!;
const rows: string[] = [];
const verdicts: string[] = [];
let allZero = true;

function verdict(tool: string, cluster: Cluster, base: Summary, run: Summary, recycleGoal: number): string {
  const { recycles } = cluster;
  const seconds = cluster.slices.length * SLICE;
  const rpsRatio = run.rps / base.rps;
  const p99Ratio = run.p99Ms / base.p99Ms;
  const goal = recycleGoal
    ? ` (goal >= ${recycleGoal}: ${recycles.done >= recycleGoal ? 'met' : 'not met'})`
    : '';
  return (
    `- ${tool}, ${cluster.name}: **${recycles.done} recycles** in ${seconds} s${goal}, ` +
    `${recycles.killed} killed at the drain deadline, ${recycles.aborted} aborted; failed requests **${run.failed}**, ` +
    `throughput ratio **${rpsRatio.toFixed(3)}** (goal >= 0.9: ${rpsRatio >= 0.9 ? 'met' : 'not met'}), ` +
    `p99 ratio **${p99Ratio.toFixed(2)}** (goal <= 2: ${p99Ratio <= 2 ? 'met' : 'not met'}); ` +
    `replacement boot p50 ${percentile(recycles.bootMs, 50)} ms, ` +
    `drain p50 ${percentile(recycles.drainMs, 50)} ms / max ${percentile(recycles.drainMs, 100)} ms; ` +
    `extra CPU per recycle ${(((run.cpuUs - base.cpuUs) * run.requests) / 1e6 / recycles.done).toFixed(2)} s.`
  );
}

for (const tool of TOOLS) {
  const clusters = [
    await startCluster('no recycling', undefined),
    await startCluster(`maxRequests ${MAX_REQUESTS}`, recycle),
  ];
  if (tool === 'wrk' && LARGE_MAX_REQUESTS > 0) {
    clusters.push(await startCluster(`maxRequests ${LARGE_MAX_REQUESTS}`, largeRecycle));
  }
  await runSlices(tool, clusters);
  await Promise.all(clusters.map((cluster) => cluster.stop()));
  const summaries = clusters.map((cluster) => summarize(cluster));
  clusters.forEach((cluster, i) => {
    const s = summaries[i]!;
    allZero &&= s.failed === 0;
    const row = `| ${tool} | ${cluster.name} | ${cluster.slices.length * SLICE} | ${s.requests} | ${Math.round(s.rps)} | ${s.p99Ms.toFixed(2)} | ${s.failed} (${s.detail}) | ${cluster.recycles.done} | ${s.cpuUs.toFixed(1)} |`;
    console.log(row);
    rows.push(row);
    if (i > 0) verdicts.push(verdict(tool, cluster, summaries[0]!, s, i === 1 ? MIN_RECYCLES : 0));
  });
}

const loadAfter = loadavg()[0]!;
const table = [
  `2 workers, ${CONNECTIONS} keep-alive connections, the clusters loaded in alternating ${SLICE} s slices after a 2 s warm-up; ` +
    `\`recycle: ${JSON.stringify(recycle)}\` (and \`maxRequests: ${LARGE_MAX_REQUESTS}\` with wrk); ` +
    `${machineNote()}; 1-minute load average ${loadBefore.toFixed(1)} before, ${loadAfter.toFixed(1)} after.`,
  '',
  '| tool | run | s | requests | req/s | p99 ms (median of slices) | failed | recycles | CPU µs/request |',
  '| --- | --- | ---: | ---: | ---: | ---: | --- | ---: | ---: |',
  ...rows,
  '',
  ...verdicts,
  '',
  `Zero failed requests (no socket error, no non-2xx, no timeout) in every run: **${allZero ? 'yes' : 'NO'}**.`,
  '',
  'Where the throughput goes: every recycle starts a cold Node process (a fork, module loading, a listen) whose',
  "first few thousand requests run in V8's interpreter and baseline tiers at 4 to 6 times the CPU per request",
  'of a warm worker. "Extra CPU per recycle" is that cost, from the CPU times of every process of each cluster',
  '(/proc), which unlike throughput does not depend on what else the shared machine runs. With a limit of',
  '1,000 requests no worker ever gets warm; the recycler itself adds a drain of tens of milliseconds and never',
  'reduces the ready workers below 2. See [recycling: cost](recycling.md#cost-choose-limits-in-the-tens-of-thousands).',
  'The machine was shared with other work during the run (load average above): throughput and p99 ratios',
  'move by tens of per cent between runs, and replacement boots take longer than on an idle machine.',
].join('\n');
console.log(`\n${table}`);
writeBenchmarkSection('recycle', table);
if (!allZero) process.exitCode = 1;
