import assert from 'node:assert/strict';
import { test } from 'node:test';
import { event } from './helpers/process.js';
import { minReadyWorkers, startRecycleCluster } from './helpers/recycle-http.js';

/** The part of autocannon's programmatic API used here (the package ships no types). */
interface AutocannonRun extends PromiseLike<AutocannonResult> {
  on(event: 'reqError', listener: (error: NodeJS.ErrnoException) => void): void;
  stop(): void;
}
interface AutocannonResult {
  errors: number;
  timeouts: number;
  non2xx: number;
  '2xx': number;
  requests: { total: number };
}
type Autocannon = (options: { url: string; connections: number; duration: number }) => AutocannonRun;
const autocannon = ((await import('autocannon' as string)) as { default: Autocannon }).default;

test('keep-alive load through several recycles: zero errors, zero non-2xx, zero timeouts', async (t) => {
  const { cluster, port } = await startRecycleCluster(t, { recycle: { maxRequests: 2_000, minLifetime: 0 } });
  const errors: string[] = [];
  // Load until three recycles are over (a busy machine boots replacements slowly), at most 30 s.
  const run = autocannon({ url: `http://127.0.0.1:${port}/`, connections: 20, duration: 30 });
  run.on('reqError', (error: NodeJS.ErrnoException) => errors.push(error.code ?? error.message));
  const threeDone = cluster.waitForLogs(event('worker:recycle:done'), 3, 30_000).catch(() => undefined);
  await Promise.race([threeDone, run]);
  run.stop();
  const result = await run;
  const recycles = cluster.logs.filter(event('worker:recycle:done'));
  assert.ok(recycles.length >= 3, `only ${recycles.length} recycles under load`);
  assert.deepEqual(errors, []);
  assert.equal(result.errors, 0);
  assert.equal(result.timeouts, 0);
  assert.equal(result.non2xx, 0);
  assert.ok(result.requests.total > 2_000 * 3);
  assert.equal(result['2xx'], result.requests.total);
  for (const line of recycles) assert.equal(line.code, 0, 'every drain ended cleanly');
  assert.equal(minReadyWorkers(cluster, 2), 2, 'capacity never below the configured count');
});
