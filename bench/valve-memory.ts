/**
 * The services sibling in dispatch mode: its RSS while it hands a PostgreSQL backlog to 2 workers that each
 * hold a 50 MiB application, beside a bare node process. The sibling loads the listeners only, never the
 * application, so it should stay within 25 MiB of bare node.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { enqueue } from '../lib/pg.js';
import {
  benchDir,
  loadAverages,
  machineNote,
  sampleRss,
  startApp,
  writeBenchmarkSection,
} from './lib/load.js';

const APP_MB = 50;
const GOAL_MIB = 25;
const SAMPLES = 10;
const BACKLOG = 20_000;
const BASE = process.env.STEWARD_BENCH_PG ?? 'postgres://postgres@127.0.0.1:5432/test';
const schema = `steward_bench_valve_memory_${process.pid}`;
const admin = new pg.Pool({ connectionString: BASE, max: 2 });
// Every process of the app preloads a heap-space reporter (bench/lib/heap-spaces.js); bare node is read without.
const heapDir = mkdtempSync(join(tmpdir(), 'steward-valve-heap-'));
const heapEnv = {
  STEWARD_BENCH_HEAP_DIR: heapDir,
  NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --import ${join(benchDir, 'lib/heap-spaces.js')}`.trim(),
};

type HeapSpaces = Record<string, { used: number; committed: number }>;
/** The heap spaces a process last reported; its reporter rewrites the file every 500 ms, so a read may catch it half written. */
async function heapSpaces(pid: number): Promise<HeapSpaces> {
  for (let attempt = 1; ; attempt++) {
    try {
      return JSON.parse(readFileSync(join(heapDir, `${pid}.json`), 'utf8')) as HeapSpaces;
    } catch (error) {
      if (attempt === 5) throw error;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
}
const MiB = 1024 * 1024;

function childrenOf(parent: number): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const ppid = Number(readFileSync(`/proc/${entry}/stat`, 'utf8').split(') ')[1]!.split(' ')[1]);
      if (ppid === parent) pids.push(Number(entry));
    } catch {
      // the process left while the list was read
    }
  }
  return pids;
}

async function queued(): Promise<number> {
  const result = await admin.query(`SELECT count(*)::int AS n FROM ${schema}.events`);
  return result.rows[0].n as number;
}

async function waitFor(check: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/**
 * A bare `node` process that only keeps its event loop alive: the floor of any Node process. Its RSS is read
 * without the heap-space preload, which costs a bare process about 3 MiB (an `--import` starts the ESM
 * loader, which the sibling, an ES module, starts anyway); its heap spaces come from a second bare process
 * with the preload.
 */
let bareHeap: HeapSpaces = {};
async function measureBare(): Promise<number> {
  const plain = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
  const preloaded = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], {
    stdio: 'ignore',
    env: { ...process.env, ...heapEnv },
  });
  await new Promise((resolve) => setTimeout(resolve, 600));
  const rss = await sampleRss(plain.pid!, SAMPLES);
  bareHeap = await heapSpaces(preloaded.pid!);
  for (const child of [plain, preloaded]) {
    child.kill('SIGKILL');
    await once(child, 'exit');
  }
  return rss;
}

const loadBefore = loadAverages();
console.log(`load average before: ${loadBefore}`);
await admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
const app = await startApp('apps/valve-app.js', {
  VALVE_PG: BASE,
  VALVE_SCHEMA: schema,
  APP_MB: String(APP_MB),
  ...heapEnv,
});
let rows: { role: string; pid: number; rss: number }[];
let handledWhileSampled: number;
let sampledSeconds = 1;
let siblingHeap: HeapSpaces;
try {
  await waitFor(
    async () => (await admin.query('SELECT to_regclass($1) AS t', [`${schema}.events`])).rows[0].t !== null,
    30_000,
    'queue tables',
  );
  for (let done = 0; done < BACKLOG; done += 1000)
    await enqueue(
      admin,
      Array.from({ length: 1000 }, () => ({ type: 'burn' })),
      { schema },
    );
  // Sampled while events flow through the sibling to the workers.
  await waitFor(async () => (await queued()) < BACKLOG - 500, 60_000, 'dispatch under way');
  const primary = app.child.pid!;
  const children = childrenOf(primary);
  const workers = new Set<number>();
  const workerPid = async () => Number(/"pid":(\d+)/.exec(await (await fetch(app.url)).text())?.[1]);
  for (let i = 0; i < 50 && workers.size < 2; i++) workers.add(await workerPid());
  const siblings = children.filter((pid) => !workers.has(pid));
  if (siblings.length !== 1)
    throw new Error(`expected one services sibling among ${children} (workers ${[...workers]})`);
  const before = await queued();
  const sampleStart = Date.now();
  rows = [
    { role: 'primary', pid: primary, rss: 0 },
    ...[...workers].map((pid) => ({ role: 'worker', pid, rss: 0 })),
    { role: 'services sibling (dispatch)', pid: siblings[0]!, rss: 0 },
  ];
  for (const row of rows) row.rss = await sampleRss(row.pid, SAMPLES);
  handledWhileSampled = before - (await queued());
  sampledSeconds = (Date.now() - sampleStart) / 1000;
  siblingHeap = await heapSpaces(siblings[0]!);
  if (handledWhileSampled <= 0) throw new Error('no event was dispatched while the sibling was sampled');
} finally {
  await app.stop();
  await admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  await admin.end();
}
const bare = await measureBare();
rmSync(heapDir, { recursive: true, force: true });
const loadAfter = loadAverages();
console.log(`load average after: ${loadAfter}`);
const sibling = rows.find((row) => row.role.startsWith('services sibling'))!.rss;
const table = [
  '| process | RSS MiB | ratio to bare node | above bare MiB |',
  '| --- | ---: | ---: | ---: |',
  `| bare node (\`setInterval\` only, no preload) | ${bare.toFixed(1)} | 1.00 | 0.0 |`,
  ...rows.map(
    (row) =>
      `| ${row.role} | ${row.rss.toFixed(1)} | ${(row.rss / bare).toFixed(2)} | ${(row.rss - bare).toFixed(1)} |`,
  ),
].join('\n');
const above = sibling - bare;
const spaceNames = Object.keys(siblingHeap!).filter(
  (space) => (siblingHeap![space]?.committed ?? 0) > 0 || (bareHeap[space]?.committed ?? 0) > 0,
);
const cell = (spaces: HeapSpaces, space: string) =>
  `${((spaces[space]?.used ?? 0) / MiB).toFixed(1)} / ${((spaces[space]?.committed ?? 0) / MiB).toFixed(1)}`;
const heapTable = [
  '| heap space | services sibling | bare node |',
  '| --- | ---: | ---: |',
  ...spaceNames.map((space) => `| ${space} | ${cell(siblingHeap!, space)} | ${cell(bareHeap, space)} |`),
].join('\n');
const body = `2 workers that each hold ${APP_MB} MiB of application state and handle the dispatched \`burn\` events
(2 ms of CPU each) of a ${BACKLOG}-event PostgreSQL backlog; the services sibling runs the queue with
\`toWorkers('burn')\` and never loads the application. RSS from \`/proc/<pid>/status\`, median of ${SAMPLES}
samples over 2 s per process, taken one process after the other while ${handledWhileSampled} events were dispatched
(${(handledWhileSampled / sampledSeconds).toFixed(0)} a second); every process of the app preloads a heap-space reporter
(\`bench/lib/heap-spaces.js\`), the bare node process whose RSS is the baseline does not; ${machineNote()}; load average before
${loadBefore}, after ${loadAfter}. \`npm run bench:valve-memory\`.

${table}

The sibling in dispatch mode is ${(sibling / bare).toFixed(2)}× a bare node process, ${above.toFixed(1)} MiB above it.
Goal: within ${GOAL_MIB} MiB of bare node: **${above <= GOAL_MIB ? 'met' : 'not met'}**.

V8 heap spaces of the sibling at the end of its sampling, beside bare node (\`v8.getHeapSpaceStatistics()\`,
used / committed MiB):

${heapTable}`;
console.log(body);
writeBenchmarkSection('valve-memory', body);
