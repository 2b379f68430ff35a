/**
 * Recycling cost of the throng adapter (drain-then-refork) against steward() (surge-then-drain): 2 workers,
 * keep-alive load from wrk, the same maxRequests; baseline steward() without recycling, in the same run.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import {
  benchDir,
  freePort,
  type LoadResult,
  machineNote,
  median,
  runWrk,
  writeBenchmarkSection,
} from './lib/load.js';

const ROUNDS = Number(process.env.ROUNDS ?? 2);
const SECONDS = Number(process.env.SECONDS ?? 6);
const CONNECTIONS = Number(process.env.CONNECTIONS ?? 50);
const MAX_REQUESTS = Number(process.env.MAX_REQUESTS ?? 20_000);
const WORKERS = 2;

interface Transition {
  time: number;
  msg: string;
  worker: number;
}

interface Cluster {
  url: string;
  transitions: Transition[];
  stop(): Promise<void>;
}

async function startCluster(forker: 'throng' | 'steward', recycle: object | undefined): Promise<Cluster> {
  const port = await freePort();
  const env: Record<string, string> = { ...process.env, PORT: String(port), FORKER: forker } as Record<
    string,
    string
  >;
  delete env.STEWARD_LOG_LEVEL;
  if (recycle) env.RECYCLE = JSON.stringify(recycle);
  const child = spawn(process.execPath, [`${benchDir}apps/throng-recycle-app.js`], {
    env,
    stdio: ['ignore', 'pipe', 'inherit'],
    detached: true,
  });
  const transitions: Transition[] = [];
  let buffered = '';
  const ready = new Promise<void>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`bench app exited with ${code} before it was ready`)));
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      buffered += chunk;
      const lines = buffered.split('\n');
      buffered = lines.pop()!;
      for (const raw of lines) {
        const line = JSON.parse(raw) as { time: number; msg: string; worker?: number };
        if (['worker:ready', 'worker:draining', 'worker:dead', 'worker:recycle:done'].includes(line.msg))
          transitions.push({ time: line.time, msg: line.msg, worker: line.worker ?? 0 });
        if (transitions.filter((t) => t.msg === 'worker:ready').length === WORKERS) resolve();
      }
    });
  });
  await ready;
  return { url: `http://127.0.0.1:${port}/`, transitions, stop: () => stopGroup(child) };
}

async function stopGroup(child: ChildProcess): Promise<void> {
  const exited = once(child, 'exit');
  process.kill(-child.pid!, 'SIGTERM');
  const timer = setTimeout(() => process.kill(-child.pid!, 'SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}

/** Share of [from, to] during which fewer than WORKERS workers were ready and not draining. */
function reducedCapacity(transitions: Transition[], from: number, to: number): number {
  const accepting = new Set<number>();
  let reduced = 0;
  let last = from;
  for (const t of transitions) {
    if (t.time > to) break;
    if (t.time > from && accepting.size < WORKERS) reduced += t.time - Math.max(last, from);
    if (t.time > from) last = t.time;
    if (t.msg === 'worker:ready') accepting.add(t.worker);
    else if (t.msg !== 'worker:recycle:done') accepting.delete(t.worker);
  }
  if (accepting.size < WORKERS) reduced += to - Math.max(last, from);
  return reduced / (to - from);
}

interface Run {
  result: LoadResult;
  recycles: number;
  /** Share of the run at reduced capacity. */
  reduced: number;
  /** Milliseconds at reduced capacity per recycle. */
  dipMs: number;
}

async function measure(forker: 'throng' | 'steward', recycle: object | undefined): Promise<Run> {
  const cluster = await startCluster(forker, recycle);
  await runWrk(cluster.url, CONNECTIONS, 2); // warm-up
  const from = Date.now();
  const before = cluster.transitions.filter((t) => t.msg === 'worker:recycle:done').length;
  const result = await runWrk(cluster.url, CONNECTIONS, SECONDS);
  const to = Date.now();
  const recycles =
    cluster.transitions.filter((t) => t.msg === 'worker:recycle:done' && t.time <= to).length - before;
  await cluster.stop();
  const reduced = reducedCapacity(cluster.transitions, from, to);
  return { result, recycles, reduced, dipMs: recycles === 0 ? 0 : (reduced * (to - from)) / recycles };
}

const recycle = { maxRequests: MAX_REQUESTS, minLifetime: 0 };
const configs = [
  { name: 'steward(), no recycling', forker: 'steward', recycle: undefined },
  { name: 'steward(), surge-then-drain', forker: 'steward', recycle },
  { name: 'throng + forThrong, drain-then-refork', forker: 'throng', recycle },
] as const;
const runs = new Map<string, Run[]>(configs.map((config) => [config.name, []]));
for (let round = 1; round <= ROUNDS; round++) {
  for (const config of configs) {
    const run = await measure(config.forker, config.recycle);
    runs.get(config.name)!.push(run);
    console.log(
      `round ${round} ${config.name}: ${Math.round(run.result.rps)} req/s, p99 ${run.result.p99Ms} ms, ` +
        `errors ${run.result.errors}, recycles ${run.recycles}, reduced capacity ${(run.reduced * 100).toFixed(1)}%`,
    );
  }
}
const summary = (name: string) => {
  const list = runs.get(name)!;
  return {
    rps: median(list.map((run) => run.result.rps)),
    p99: median(list.map((run) => run.result.p99Ms)),
    errors: list.reduce((sum, run) => sum + run.result.errors, 0),
    recycles: list.reduce((sum, run) => sum + run.recycles, 0),
    reduced: median(list.map((run) => run.reduced)),
    dipMs: median(list.filter((run) => run.recycles > 0).map((run) => run.dipMs)),
  };
};
const base = summary(configs[0].name);
const rows = configs.map(({ name }) => {
  const s = summary(name);
  const dip = Number.isNaN(s.dipMs) ? '-' : String(Math.round(s.dipMs));
  return `| ${name} | ${Math.round(s.rps)} | ${(s.rps / base.rps).toFixed(3)} | ${s.p99.toFixed(2)} | ${(s.p99 / base.p99).toFixed(2)} | ${s.errors} | ${s.recycles} | ${(s.reduced * 100).toFixed(1)}% | ${dip} |`;
});
const table = [
  `${WORKERS} workers, wrk with ${CONNECTIONS} keep-alive connections, ${SECONDS} s per run after a 2 s warm-up, ` +
    `median of ${ROUNDS} interleaved rounds (errors and recycles summed), ` +
    `\`recycle: ${JSON.stringify(recycle)}\`; ${machineNote()}. "Reduced capacity" is the share of the run during ` +
    `which fewer than ${WORKERS} workers were ready and not draining (from the primary's state transitions); ` +
    `"dip per recycle" is that time divided by the recycles.`,
  '',
  '| run | req/s | ratio to no recycling | p99 ms | p99 ratio | errors | recycles | reduced capacity | dip per recycle ms |',
  '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
  ...rows,
].join('\n');
console.log(`\n${table}`);
writeBenchmarkSection('throng-recycle', table);
