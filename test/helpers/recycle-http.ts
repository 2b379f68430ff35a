import http from 'node:http';
import { event, freePort, type Spawned, spawnFixture } from './process.js';

export { freePort };

export interface Answer {
  status: number;
  pid: number;
  connection: string | undefined;
}

/** One request on a fresh connection (no keep-alive pool in the test process); resolves with the worker pid. */
export function get(port: number, path = '/', timeoutMs = 5_000): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const request = http.get(
      { host: '127.0.0.1', port, path, agent: false, timeout: timeoutMs },
      (response) => {
        let body = '';
        response.setEncoding('utf8').on('data', (chunk: string) => {
          body += chunk;
        });
        response.on('end', () => {
          const pid = Number((JSON.parse(body || '{}') as { pid?: number }).pid ?? 0);
          resolve({ status: response.statusCode ?? 0, pid, connection: response.headers.connection });
        });
      },
    );
    request.on('timeout', () => request.destroy(new Error(`GET ${path} timed out after ${timeoutMs} ms`)));
    request.on('error', reject);
  });
}

/** Sends a request and never waits for its answer (for a request stuck in a worker); returns its socket. */
export function hang(port: number, path = '/hang'): http.ClientRequest {
  const request = http.get({ host: '127.0.0.1', port, path, agent: false });
  request.on('error', () => {});
  return request;
}

export interface RecycleCluster {
  cluster: Spawned;
  port: number;
  /** Pids of the workers that reported ready so far. */
  readyPids(): number[];
}

/** Starts `test/fixtures/recycle-cluster.js` on a free port and waits for its first ready workers (2 unless `options.workers`). */
export async function startRecycleCluster(
  t: { after(fn: () => void): void },
  options: Record<string, unknown>,
  env: Record<string, string> = {},
): Promise<RecycleCluster> {
  const port = await freePort();
  const cluster = spawnFixture('recycle-cluster.js', {
    PORT: String(port),
    FIXTURE_OPTIONS: JSON.stringify(options),
    ...env,
  });
  t.after(() => cluster.killAll());
  await cluster.waitForLogs(event('worker:ready'), (options.workers as number | undefined) ?? 2, 20_000);
  const readyPids = () => cluster.logs.filter(event('worker:ready')).map((line) => line.workerPid as number);
  return { cluster, port, readyPids };
}

/** Recycle lifecycle lines in order; asserts-friendly view of start/done interleaving. */
export function recycleTimeline(cluster: Spawned): string[] {
  return cluster.logs
    .filter((line) => line.msg === 'worker:recycle:start' || line.msg === 'worker:recycle:done')
    .map((line) => `${line.msg === 'worker:recycle:start' ? 'start' : 'done'}:${line.worker}`);
}

/** The most recycles in progress at once, from the start/done lines. */
export function maxConcurrentRecycles(cluster: Spawned): number {
  let current = 0;
  let max = 0;
  for (const entry of recycleTimeline(cluster)) {
    current += entry.startsWith('start') ? 1 : -1;
    max = Math.max(max, current);
  }
  return max;
}

/**
 * The fewest ready workers at any moment after `workers` were first ready, replayed from the primary's
 * log lines in order (a draining worker no longer counts).
 */
export function minReadyWorkers(cluster: Spawned, workers: number): number {
  const ready = new Set<unknown>();
  let min = Number.POSITIVE_INFINITY;
  let reached = false;
  for (const line of cluster.logs) {
    if (line.msg === 'worker:ready') ready.add(line.worker);
    else if (line.msg === 'worker:draining' || line.msg === 'worker:dead') ready.delete(line.worker);
    else continue;
    reached ||= ready.size >= workers;
    if (reached) min = Math.min(min, ready.size);
  }
  return min;
}
