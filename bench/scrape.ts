/** Scrape latency of /metrics with 2 and 8 workers of 10,000 series each, against prom-client's clusterMetrics(). */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import http from 'node:http';
import { loadavg } from 'node:os';
import { benchDir, freePort, machineNote, median, writeBenchmarkSection } from './lib/load.js';

const WORKER_COUNTS = [2, 8];
const SCRAPES = Number(process.env.BENCH_SCRAPES ?? 20);
const WARMUP = 3;

interface Scraped {
  status: number;
  bytes: number;
  body: string;
}

function scrapeOnce(url: string): Promise<Scraped> {
  return new Promise((resolve, reject) => {
    const request = http.get(url, { agent: false }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () => {
        const body = Buffer.concat(chunks);
        resolve({ status: response.statusCode ?? 0, bytes: body.length, body: body.toString('utf8') });
      });
    });
    request.setTimeout(60_000, () => request.destroy(new Error('scrape timed out')));
    request.on('error', reject);
  });
}

interface Running {
  child: ChildProcess;
  url: string;
}

/** Starts an app and waits until one scrape holds every worker's series (the last counter summed). */
async function startApp(file: string, workers: number): Promise<Running> {
  const port = await freePort();
  const child = spawn(process.execPath, [benchDir + file], {
    env: { ...process.env, PORT: String(port), WORKERS: String(workers) },
    stdio: ['ignore', 'ignore', 'inherit'],
    detached: true,
  });
  const url = `http://127.0.0.1:${port}/metrics`;
  const complete = `bench_counter_49_total{route="/r/99"} ${100 * workers}\n`;
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (Date.now() > deadline) throw new Error(`${file} with ${workers} workers never showed all series`);
    await new Promise((resolve) => setTimeout(resolve, 250));
    const scraped = await scrapeOnce(url).catch(() => undefined);
    if (scraped?.status === 200 && scraped.body.includes(complete)) return { child, url };
  }
}

async function stopApp(app: Running): Promise<void> {
  const exited = once(app.child, 'exit');
  try {
    process.kill(-app.child.pid!, 'SIGTERM');
  } catch {
    return;
  }
  const timer = setTimeout(() => process.kill(-app.child.pid!, 'SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
  try {
    process.kill(-app.child.pid!, 'SIGKILL');
  } catch {
    // the group is gone
  }
}

interface Measured {
  times: number[];
  bytes: number;
  failures: number;
}

async function scrapeTimed(url: string, into: Measured, record: boolean): Promise<void> {
  const started = performance.now();
  const scraped = await scrapeOnce(url);
  const ms = performance.now() - started;
  if (scraped.status !== 200) into.failures++;
  if (!record) return;
  into.times.push(ms);
  into.bytes = scraped.bytes;
}

/**
 * Both clusters run at once and are scraped in alternation, so a load spike on this shared machine hits
 * both alike instead of skewing whichever happened to run during it.
 */
async function measure(workers: number): Promise<{ baseline: Measured; steward: Measured }> {
  const baselineApp = await startApp('apps/scrape-prom.js', workers);
  const stewardApp = await startApp('apps/scrape-steward.js', workers).catch(async (error) => {
    await stopApp(baselineApp);
    throw error;
  });
  const baseline: Measured = { times: [], bytes: 0, failures: 0 };
  const steward: Measured = { times: [], bytes: 0, failures: 0 };
  try {
    for (let i = 0; i < WARMUP + SCRAPES; i++) {
      const record = i >= WARMUP;
      // Alternate which goes first, so neither always scrapes right after the other's burst.
      if (i % 2 === 0) {
        await scrapeTimed(baselineApp.url, baseline, record);
        await scrapeTimed(stewardApp.url, steward, record);
      } else {
        await scrapeTimed(stewardApp.url, steward, record);
        await scrapeTimed(baselineApp.url, baseline, record);
      }
    }
  } finally {
    await Promise.all([stopApp(baselineApp), stopApp(stewardApp)]);
  }
  return { baseline, steward };
}

function p95(times: number[]): number {
  const sorted = [...times].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil(sorted.length * 0.95) - 1)]!;
}

const loadAtStart = loadavg()[0]!;
const rows: string[] = [];
for (const workers of WORKER_COUNTS) {
  const { baseline, steward } = await measure(workers);
  const ratio = median(steward.times) / median(baseline.times);
  console.log(
    `${workers} workers: clusterMetrics ${median(baseline.times).toFixed(1)} ms, cluster-steward ${median(steward.times).toFixed(1)} ms (x${ratio.toFixed(2)})`,
  );
  for (const [name, result, shown] of [
    ['prom-client clusterMetrics()', baseline, '1.00'],
    ['cluster-steward /metrics', steward, ratio.toFixed(2)],
  ] as const) {
    rows.push(
      `| ${workers} | ${name} | ${median(result.times).toFixed(1)} | ${shown} | ${p95(result.times).toFixed(1)} | ${(result.bytes / 1024).toFixed(0)} | ${result.failures} |`,
    );
  }
}

writeBenchmarkSection(
  'scrape',
  `Sequential scrapes over HTTP of a cluster whose workers each hold 10,000 series (5,000 counter, 2,500 gauge,
2,500 histogram samples), ${SCRAPES} scrapes of each after ${WARMUP} warm-up ones; ${machineNote()}.
The baseline is prom-client's own \`AggregatorRegistry.clusterMetrics()\` in a bare \`node:cluster\` primary,
running at the same time and scraped in alternation with cluster-steward. cluster-steward also collects the
library's and Node's process metrics of every process (labelled by role), validates every family it receives,
and merges the retired workers' totals. One-minute load average at the start: ${loadAtStart.toFixed(1)}
(other work shares the machine, so absolute times vary between runs; the ratio is what to compare).

| workers | scrape | median ms | ratio to clusterMetrics | p95 ms | body KiB | failed scrapes |
| ---: | --- | ---: | ---: | ---: | ---: | ---: |
${rows.join('\n')}`,
);
