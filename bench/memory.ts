/** RSS per process role (primary, workers, services sibling) of a demo-like app, beside a bare node process. */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { loadavg } from 'node:os';
import { benchDir, freePort, machineNote, median, sampleRss, writeBenchmarkSection } from './lib/load.js';

const APP_MB = 50;
/** Goal: the primary (sibling placement) at most this many MiB above a bare node process. */
const PRIMARY_GOAL_MIB = 15;
const SAMPLES = 5;

interface Row {
  run: string;
  role: string;
  pid: number;
  rss: number;
}

/** A bare `node` process that only keeps its event loop alive: the floor of any Node process. */
async function measureBare(): Promise<number> {
  const child = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
  await new Promise((resolve) => setTimeout(resolve, 500));
  const rss = await sampleRss(child.pid!, SAMPLES);
  child.kill('SIGKILL');
  await once(child, 'exit');
  return rss;
}

/** Starts the app, waits for workers and services, and reads the RSS of each role. */
async function measureApp(placement: 'sibling' | 'primary' | 'none'): Promise<Row[]> {
  const child = spawn(process.execPath, [`${benchDir}apps/memory-app.js`], {
    env: { ...process.env, PORT: String(await freePort()), APP_MB: String(APP_MB), PLACEMENT: placement },
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
  const deadline = Date.now() + 30_000;
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
  for (const row of rows) row.rss = await sampleRss(row.pid, SAMPLES);
  const modules = lines.filter((line) => line.msg === 'bench:primary-modules').at(-1);
  rows[0]!.role = `primary (prom-client ${modules?.promClient ? 'loaded' : 'not loaded'})`;
  process.kill(-child.pid!, 'SIGTERM');
  await once(child, 'exit');
  return rows;
}

const loadBefore = loadavg()[0]!.toFixed(1);
console.log(`load average before: ${loadBefore}`);
const bare = await measureBare();
const rows = [
  ...(await measureApp('sibling')),
  ...(await measureApp('primary')),
  ...(await measureApp('none')),
];
const worker = median(
  rows.filter((row) => row.run === 'sibling' && row.role === 'worker').map((row) => row.rss),
);
const sibling = rows.find((row) => row.role === 'services sibling')!.rss;
const table = [
  '| placement | process | RSS MiB | ratio to bare node | above bare MiB |',
  '| --- | --- | ---: | ---: | ---: |',
  `| — | bare node (\`setInterval\` only) | ${bare.toFixed(1)} | 1.00 | 0.0 |`,
  ...rows.map(
    (row) =>
      `| ${row.run} | ${row.role} | ${row.rss.toFixed(1)} | ${(row.rss / bare).toFixed(2)} | ${(row.rss - bare).toFixed(1)} |`,
  ),
].join('\n');
const met = sibling - bare < APP_MB / 2;
const isPrimary = (row: Row) => row.role.startsWith('primary');
const primary = rows.find((row) => row.run === 'sibling' && isPrimary(row))!.rss;
const primaryMet = primary - bare <= PRIMARY_GOAL_MIB;
const webOnly = rows.find((row) => row.run === 'none (web only)' && isPrimary(row))!.rss;
const loadAfter = loadavg()[0]!.toFixed(1);
const body = `Two Express workers that each hold ${APP_MB} MiB of application state, two listener-like services
handling an event every 10 ms; RSS from \`/proc/<pid>/status\`, median of ${SAMPLES} samples once running;
${machineNote()}.

${table}

The sibling imports only the services module: it sits ${(sibling - bare).toFixed(1)} MiB above a bare node
process, a worker ${(worker - bare).toFixed(1)} MiB. Goal: the sibling carries none of the HTTP app's
${APP_MB} MiB (sibling − bare < ${APP_MB / 2} MiB): **${met ? 'met' : 'not met'}**.

The primary loads what it needs when it needs it: the control server and the dashboard only with a
control port, the services host of the chosen placement only (never the listeners' code with
\`placement: 'sibling'\`), the valve only with services, and prom-client only at the first scrape: its
own metrics are plain numbers until then, but a component that creates prom-client metrics when it starts
still loads it (the process column says whether the primary had loaded it). Goal: primary (sibling
placement) ≤ ${PRIMARY_GOAL_MIB} MiB above bare node: **${(primary - bare).toFixed(1)} MiB, ${primaryMet ? 'met' : 'not met'}**;
a web-only primary ${(webOnly - bare).toFixed(1)} MiB. What remains is mostly the runtime: pino, forking
and the IPC channels, and the young generation, which V8 grows to 2 × 2 MiB semi-spaces while the modules
load and does not shrink once the primary is idle. One-minute load average ${loadBefore} before,
${loadAfter} after.`;
console.log(body);
writeBenchmarkSection('memory', body);
