/**
 * Worker recycling under keep-alive load: 2 workers, maxRequests small enough for dozens of recycles,
 * against the same load with no recycling, with autocannon and with wrk (plus a larger limit with wrk).
 * Goals: 0 failed requests, throughput ratio >= 0.9, p99 ratio <= 2. About 3 minutes with the defaults
 * (30 s per run, as the goal asks); SECONDS, CONNECTIONS, MAX_REQUESTS, LARGE_MAX_REQUESTS (0: skip),
 * CONCURRENCY and TOOLS (autocannon,wrk) change it.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { loadavg } from 'node:os';
import {
  benchDir,
  freePort,
  type LoadResult,
  machineNote,
  runAutocannon,
  runWrk,
  writeBenchmarkSection,
} from './lib/load.js';

const SECONDS = Number(process.env.SECONDS ?? 30);
const CONNECTIONS = Number(process.env.CONNECTIONS ?? 50);
const MAX_REQUESTS = Number(process.env.MAX_REQUESTS ?? 1_000);
// Both workers may be replaced at once: a replacement boot (not the drain) bounds the recycle rate.
const CONCURRENCY = Number(process.env.CONCURRENCY ?? 2);
const LARGE_MAX_REQUESTS = Number(process.env.LARGE_MAX_REQUESTS ?? 100_000);
const TOOLS = (process.env.TOOLS ?? 'autocannon,wrk').split(',') as Array<'autocannon' | 'wrk'>;

interface Recycles {
  done: number;
  killed: number;
  aborted: number;
  drainMs: number[];
  bootMs: number[];
}

interface Cluster {
  url: string;
  recycles: Recycles;
  stop(): Promise<void>;
}

/** Starts the bench app and resolves once both workers are ready; counts recycles from its pino lines. */
async function startCluster(recycle: Record<string, unknown> | undefined): Promise<Cluster> {
  const port = await freePort();
  const env: Record<string, string> = { ...process.env, PORT: String(port) } as Record<string, string>;
  delete env.STEWARD_LOG_LEVEL;
  if (recycle) env.RECYCLE = JSON.stringify(recycle);
  const child = spawn(process.execPath, [`${benchDir}apps/recycle-app.js`], {
    env,
    stdio: ['ignore', 'pipe', 'inherit'],
    detached: true,
  });
  const recycles: Recycles = { done: 0, killed: 0, aborted: 0, drainMs: [], bootMs: [] };
  let ready = 0;
  let buffered = '';
  const twoReady = new Promise<void>((resolve, reject) => {
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
  await twoReady;
  return { url: `http://127.0.0.1:${port}/`, recycles, stop: () => stopGroup(child) };
}

function countRecycle(recycles: Recycles, line: Record<string, unknown>): void {
  if (line.msg === 'worker:recycle:aborted') recycles.aborted++;
  if (line.msg !== 'worker:recycle:done') return;
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

async function measure(tool: 'autocannon' | 'wrk', recycle: Record<string, unknown> | undefined) {
  const cluster = await startCluster(recycle);
  const load = tool === 'wrk' ? runWrk : runAutocannon;
  await load(cluster.url, CONNECTIONS, 2); // warm-up: JIT, connections spread over both workers
  const start = { ...cluster.recycles };
  const result = await load(cluster.url, CONNECTIONS, SECONDS);
  await cluster.stop();
  const { done, killed, aborted, drainMs, bootMs } = cluster.recycles;
  const recycles: Recycles = {
    done: done - start.done,
    killed: killed - start.killed,
    aborted: aborted - start.aborted,
    drainMs: drainMs.slice(start.done),
    bootMs: bootMs.slice(start.done),
  };
  return { result, recycles };
}

function percentile(values: number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

const failed = (result: LoadResult) => result.errors;
const recycle = { maxRequests: MAX_REQUESTS, minLifetime: 0, concurrency: CONCURRENCY };
/** A limit nearer real use: a recycle every few seconds instead of several a second. */
const largeRecycle = { ...recycle, maxRequests: LARGE_MAX_REQUESTS };
const loadBefore = loadavg()[0]!;
const rows: string[] = [];
const verdicts: string[] = [];
let allZero = true;

type Measured = Awaited<ReturnType<typeof measure>>;

function report(tool: string, name: string, measured: Measured): void {
  const { result: r, recycles } = measured;
  allZero &&= failed(r) === 0;
  console.log(
    `${tool} ${name}: ${Math.round(r.rps)} req/s, p99 ${r.p99Ms} ms, failed ${failed(r)} (${r.detail}), recycles ${recycles.done}`,
  );
  rows.push(
    `| ${tool} | ${name} | ${r.requests} | ${Math.round(r.rps)} | ${r.p99Ms.toFixed(2)} | ${failed(r)} (${r.detail}) | ${recycles.done} |`,
  );
}

function verdict(tool: string, name: string, base: LoadResult, measured: Measured, recycleGoal = 0): string {
  const { result: run, recycles } = measured;
  const rpsRatio = run.rps / base.rps;
  const p99Ratio = run.p99Ms / base.p99Ms;
  return (
    `- ${tool}, ${name}: **${recycles.done} recycles** in ${SECONDS} s${recycleGoal ? ` (goal >= ${recycleGoal}: ${recycles.done >= recycleGoal ? 'met' : 'not met'})` : ''}, ` +
    `${recycles.killed} killed at the drain deadline, ${recycles.aborted} aborted; ` +
    `failed requests **${failed(run)}**, throughput ratio **${rpsRatio.toFixed(3)}** (goal >= 0.9: ${rpsRatio >= 0.9 ? 'met' : 'not met'}), ` +
    `p99 ratio **${p99Ratio.toFixed(2)}** (goal <= 2: ${p99Ratio <= 2 ? 'met' : 'not met'}); ` +
    `replacement boot p50 ${percentile(recycles.bootMs, 50)} ms, drain p50 ${percentile(recycles.drainMs, 50)} ms / max ${percentile(recycles.drainMs, 100)} ms.`
  );
}

for (const tool of TOOLS) {
  const baseline = await measure(tool, undefined);
  report(tool, 'no recycling', baseline);
  const small = await measure(tool, recycle);
  report(tool, `maxRequests ${MAX_REQUESTS}`, small);
  verdicts.push(verdict(tool, `maxRequests ${MAX_REQUESTS}`, baseline.result, small, 60));
  if (tool !== 'wrk' || LARGE_MAX_REQUESTS === 0) continue;
  const large = await measure(tool, largeRecycle);
  report(tool, `maxRequests ${LARGE_MAX_REQUESTS}`, large);
  verdicts.push(verdict(tool, `maxRequests ${LARGE_MAX_REQUESTS}`, baseline.result, large));
}

const loadAfter = loadavg()[0]!;
const table = [
  `2 workers, ${CONNECTIONS} keep-alive connections, ${SECONDS} s per run after a 2 s warm-up, \`recycle: ${JSON.stringify(recycle)}\` ` +
    `(and \`maxRequests: ${LARGE_MAX_REQUESTS}\` with wrk); ` +
    `${machineNote()}; 1-minute load average ${loadBefore.toFixed(1)} before, ${loadAfter.toFixed(1)} after.`,
  '',
  '| tool | run | requests | req/s | p99 ms | failed | recycles |',
  '| --- | --- | ---: | ---: | ---: | --- | ---: |',
  ...rows,
  '',
  ...verdicts,
  '',
  `Zero failed requests (no socket error, no non-2xx, no timeout) in every run: **${allZero ? 'yes' : 'NO'}**.`,
].join('\n');
console.log(`\n${table}`);
writeBenchmarkSection('recycle', table);
if (!allZero) process.exitCode = 1;
