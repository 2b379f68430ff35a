import assert from 'node:assert/strict';
import { test } from 'node:test';
import { event } from './helpers/process.js';
import { get, maxConcurrentRecycles, startRecycleCluster } from './helpers/recycle-http.js';

test('maxAge (+ jitter): workers are replaced once older than their drawn age, one at a time', async (t) => {
  const { cluster, port, readyPids } = await startRecycleCluster(t, {
    heartbeatInterval: 100,
    recycle: { maxAge: 1_500, maxAgeJitter: '1s', minLifetime: 0 },
  });
  const original = readyPids();
  await cluster.waitForLogs(event('worker:recycle:done', { reason: 'max-age' }), 2, 20_000);
  const starts = cluster.logs.filter(event('worker:recycle:start')).slice(0, 2);
  for (const start of starts) {
    assert.equal(start.reason, 'max-age');
    // Drawn in [1500, 2500] ms; seen at the next heartbeat, or later when waiting for the one slot.
    assert.ok((start.age as number) >= 1_500, `recycled at age ${start.age}`);
  }
  assert.deepEqual(
    cluster.logs
      .filter(event('worker:recycle:done'))
      .slice(0, 2)
      .map((line) => line.workerPid)
      .sort(),
    [...original].sort(),
  );
  assert.equal(maxConcurrentRecycles(cluster), 1);
  assert.equal((await get(port)).status, 200);
});
