import assert from 'node:assert/strict';
import { test } from 'node:test';
import { event } from './helpers/process.js';
import { get, startRecycleCluster } from './helpers/recycle-http.js';

test('maxRss: a worker that keeps memory over the limit for memoryChecks samples is replaced', async (t) => {
  const { cluster, port } = await startRecycleCluster(t, {
    heartbeatInterval: 100,
    recycle: { maxRss: '250MB', memoryChecks: 3, minLifetime: 0 },
  });
  const grown = await get(port, '/grow?mb=300');
  const grownAt = Date.now();
  const start = await cluster.waitForLog(event('worker:recycle:start', { reason: 'max-rss' }), 15_000);
  assert.equal(start.workerPid, grown.pid);
  // Three samples over the limit, 100 ms apart: never on the first one.
  assert.ok(
    (start.time as number) - grownAt >= 150,
    `recycled ${(start.time as number) - grownAt} ms after growing`,
  );
  const done = await cluster.waitForLog(event('worker:recycle:done', { reason: 'max-rss' }), 15_000);
  assert.equal(done.workerPid, grown.pid);
  assert.equal(done.code, 0);
  assert.equal(cluster.logs.filter(event('worker:recycle:start')).length, 1, 'the other worker stays');
});

test('maxHeapUsed: a worker whose V8 heap stays over the limit is replaced', async (t) => {
  const { cluster, port } = await startRecycleCluster(t, {
    heartbeatInterval: 100,
    recycle: { maxHeapUsed: '60MB', memoryChecks: 2, minLifetime: 0 },
  });
  const grown = await get(port, '/grow-heap?mb=80');
  const done = await cluster.waitForLog(event('worker:recycle:done', { reason: 'max-heap-used' }), 15_000);
  assert.equal(done.workerPid, grown.pid);
  assert.equal(cluster.logs.filter(event('worker:recycle:start')).length, 1);
});

test('minLifetime: no policy retires a worker younger than it, even one over its limit from boot', async (t) => {
  const { cluster } = await startRecycleCluster(t, {
    heartbeatInterval: 100,
    recycle: { maxRss: '1MB', memoryChecks: 1, minLifetime: '2s' },
  });
  const start = await cluster.waitForLog(event('worker:recycle:start'), 15_000);
  assert.equal(start.reason, 'max-rss');
  assert.ok((start.age as number) >= 2_000, `recycled at age ${start.age} ms`);
});
