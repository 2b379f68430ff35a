/** RSS per process role (primary, workers, services sibling) of a demo-like app, beside a bare node process. */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { benchDir, freePort, machineNote, median, sampleRss, writeBenchmarkSection } from './lib/load.js';

const APP_MB = 50;
/** Goal: the primary (sibling placement) at most this many MiB above a bare node process. */
const PRIMARY_GOAL_MIB = 15;
const SAMPLES = 5;
/** How long a primary may take to give its start-up young generation back (V8's memory reducer waits 8 s). */
const SETTLE_DEADLINE_MS = 30_000;
const MiB = 1024 * 1024;
/** V8's young generation as committed before it grows (and after its memory reducer shrank it), MiB. */
const YOUNG_FLOOR_MIB = 1;

interface Row {
  run: string;
  role: string;
  pid: number;
  rss: number;
  /** Anonymous memory (heaps, stacks) and file-backed pages (the node binary and libraries), MiB. */
  split?: RssSplit;
}

interface RssSplit {
  anon: number;
  file: number;
}

/** The RSS of a process split into anonymous and file-backed pages (`/proc/<pid>/smaps_rollup`). */
function rssSplit(pid: number): RssSplit {
  const rollup = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
  const kib = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(rollup)?.[1] ?? 0);
  const anon = kib('Anonymous') / 1024;
  return { anon, file: kib('Rss') / 1024 - anon };
}

/** Median RSS over `samples` reads, and the split of the last moment. */
async function measure(row: Row, samples: number): Promise<void> {
  row.rss = await sampleRss(row.pid, samples);
  row.split = rssSplit(row.pid);
}

/** A bare `node` process that only keeps its event loop alive: the floor of any Node process. */
async function measureBare(): Promise<Row> {
  const child = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
  await new Promise((resolve) => setTimeout(resolve, 500));
  const row: Row = { run: '—', role: 'bare node (`setInterval` only)', pid: child.pid!, rss: 0 };
  await measure(row, SAMPLES);
  child.kill('SIGKILL');
  await once(child, 'exit');
  return row;
}

/** Starts the app, waits for workers and services, and reads the RSS of each role. */
async function measureApp(placement: 'sibling' | 'primary' | 'none'): Promise<Row[]> {
  const child = spawn(process.execPath, [`${benchDir}apps/memory-app.js`], {
    env: {
      ...process.env,
      PORT: String(await freePort()),
      APP_MB: String(APP_MB),
      PLACEMENT: placement,
    },
    stdio: ['ignore', 'pipe', 'inherit'],
    detached: true,
  });
  const lines: Record<string, unknown>[] = [];
  let buffered = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    buffered += chunk;
    const parts = buffered.split('\n');
    buffered = parts.pop()!;
    for (const part of parts) if (part.startsWith('{')) lines.push(JSON.parse(part));
  });
  const started = Date.now();
  const deadline = started + 30_000;
  const ready = () => lines.filter((line) => line.msg === 'worker:ready');
  const servicesUp = () => placement !== 'sibling' || lines.some((line) => line.msg === 'services:running');
  while (ready().length < 2 || !servicesUp()) {
    if (Date.now() > deadline) throw new Error(`memory-app (${placement}) did not get ready`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  // Let startup garbage be collected and the services run for a while.
  await new Promise((resolve) => setTimeout(resolve, 1_500));
  const run = placement === 'none' ? 'none (web only)' : placement;
  const rows: Row[] = [{ run, role: 'primary', pid: child.pid!, rss: 0 }];
  for (const line of ready()) rows.push({ run, role: 'worker', pid: line.workerPid as number, rss: 0 });
  const sibling = lines.find((line) => line.msg === 'services:running');
  if (sibling) rows.push({ run, role: 'services sibling', pid: sibling.siblingPid as number, rss: 0 });
  for (const row of rows) await measure(row, SAMPLES);
  const modules = lines.filter((line) => line.msg === 'bench:primary-modules').at(-1);
  const promClient = `prom-client ${modules?.promClient ? 'loaded' : 'not loaded'}`;
  const young = () =>
    (lines.filter((line) => line.msg === 'bench:primary-heap').at(-1)?.newSpace as number) / MiB;
  const youngAtStart = young();
  rows[0]!.role = `primary at start (${promClient}; young generation ${youngAtStart.toFixed(0)} MiB)`;
  // The young generation V8 grew while the modules loaded is given back by its memory reducer once the
  // process idles: the primary then holds what it holds for the rest of its life.
  // A primary whose young generation never grew has nothing to give back: it is settled at start.
  const shrunk = () => young() < youngAtStart || youngAtStart <= YOUNG_FLOOR_MIB;
  while (!shrunk() && Date.now() - started < SETTLE_DEADLINE_MS)
    await new Promise((resolve) => setTimeout(resolve, 100));
  const settledAfter = Date.now() - started;
  const settled = shrunk();
  const settledRow: Row = {
    run,
    role: settled
      ? `primary settled, ${(settledAfter / 1000).toFixed(0)} s after start (${promClient}; young generation ${young().toFixed(0)} MiB)`
      : `primary not settled within ${SETTLE_DEADLINE_MS / 1000} s (${promClient})`,
    pid: child.pid!,
    rss: 0,
  };
  await measure(settledRow, SAMPLES * 2);
  rows.splice(1, 0, settledRow);
  process.kill(-child.pid!, 'SIGTERM');
  await once(child, 'exit');
  return rows;
}

const loadBefore = loadavg()[0]!.toFixed(1);
console.log(`load average before: ${loadBefore}`);
const bareRow = await measureBare();
const bare = bareRow.rss;
const rows = [
  ...(await measureApp('sibling')),
  ...(await measureApp('primary')),
  ...(await measureApp('none')),
];
const worker = median(
  rows.filter((row) => row.run === 'sibling' && row.role === 'worker').map((row) => row.rss),
);
const sibling = rows.find((row) => row.role === 'services sibling')!.rss;
const cells = (row: Row) =>
  `${row.rss.toFixed(1)} | ${(row.rss / bare).toFixed(2)} | ${(row.rss - bare).toFixed(1)} | ${row.split!.anon.toFixed(1)} | ${row.split!.file.toFixed(1)}`;
const table = [
  '| placement | process | RSS MiB | ratio to bare node | above bare MiB | anon MiB | file MiB |',
  '| --- | --- | ---: | ---: | ---: | ---: | ---: |',
  ...[bareRow, ...rows].map((row) => `| ${row.run} | ${row.role} | ${cells(row)} |`),
].join('\n');
const met = sibling - bare < APP_MB / 2;
const primaryRow = (run: string, when: string) =>
  rows.find((row) => row.run === run && row.role.startsWith(`primary ${when}`));
const atStart = primaryRow('sibling', 'at start')!;
const settledRow = primaryRow('sibling', 'settled') ?? primaryRow('sibling', 'not settled')!;
const verdict = (row: Row) =>
  `${(row.rss - bare).toFixed(1)} MiB, ${row.rss - bare <= PRIMARY_GOAL_MIB ? 'met' : 'not met'}`;
const webOnly = primaryRow('none (web only)', 'settled') ?? primaryRow('none (web only)', 'not settled')!;
const webOnlyStart = primaryRow('none (web only)', 'at start')!;
const loadAfter = loadavg()[0]!.toFixed(1);
const body = `Two Express workers that each hold ${APP_MB} MiB of application state, two listener-like services
handling an event every 10 ms; RSS from \`/proc/<pid>/status\`, median of ${SAMPLES} samples once running
(${SAMPLES * 2} for a settled primary), split into anonymous and file-backed pages from
\`/proc/<pid>/smaps_rollup\`; ${machineNote()}.

${table}

The sibling imports only the services module: it sits ${(sibling - bare).toFixed(1)} MiB above a bare node
process, a worker ${(worker - bare).toFixed(1)} MiB. Goal: the sibling carries none of the HTTP app's
${APP_MB} MiB (sibling − bare < ${APP_MB / 2} MiB): **${met ? 'met' : 'not met'}**.

The primary is read twice: at start (1.5 s after both workers are ready) and settled, once V8's memory
reducer has given back the young generation it grew while the modules loaded (committed size in the
process column; the reducer runs about 8 s after the heap grew, when the process idles, and the bench waits until the
primary, which reports its young generation every 500 ms, sees it shrink, ${SETTLE_DEADLINE_MS / 1000} s at most). It loads what
it needs when it needs it: the control server and the dashboard only with a control port, the services
host of the chosen placement only (with \`placement: 'sibling'\` neither the host nor its option specs),
the valve only with services, and prom-client only at the first scrape: its own metrics are plain
numbers until then, but a component that creates prom-client metrics when it starts still loads it (the
process column says whether the primary had loaded it). Goal: primary (sibling placement) ≤
${PRIMARY_GOAL_MIB} MiB above bare node: settled **${verdict(settledRow)}**; at start ${verdict(atStart)}.
A web-only primary: ${(webOnly.rss - bare).toFixed(1)} MiB settled, ${(webOnlyStart.rss - bare).toFixed(1)} at start.

What remains of the settled primary's ${(settledRow.rss - bare).toFixed(1)} MiB above bare node: ${(settledRow.split!.file - bareRow.split!.file).toFixed(1)} MiB of
file-backed pages (the file column), mostly the node binary's own machine code and builtin module sources:
V8's optimizing compiler is paged in as soon as a function gets hot (module resolution at start, the IPC
handling of worker heartbeats a few seconds later, so any long-running Node process that does work holds
it), and these pages are shared with every other node process on the machine; and ${(settledRow.split!.anon - bareRow.split!.anon).toFixed(1)} MiB of
anonymous memory, V8's heap: the library's code and pino, the garbage between collections, and until it
settles the start-up young generation (${(atStart.split!.anon - settledRow.split!.anon).toFixed(1)} MiB more anonymous memory at start). One-minute load
average ${loadBefore} before, ${loadAfter} after.`;
console.log(body);
writeBenchmarkSection('memory', body);
