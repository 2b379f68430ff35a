import assert from 'node:assert/strict';
import { test } from 'node:test';
import { event } from './helpers/process.js';
import { get, maxConcurrentRecycles, startRecycleCluster } from './helpers/recycle-http.js';

test('max-requests: the worker reports its drawn limit the moment it crosses it, then is replaced', async (t) => {
  // A heartbeat every minute: only the worker-side check can trigger the recycles within this test.
  const { cluster, port, readyPids } = await startRecycleCluster(t, {
    heartbeatInterval: 60_000,
    recycle: { maxRequests: 30, minLifetime: 0 },
  });
  const original = readyPids();
  let sent = 0;
  while (!cluster.logs.some(event('worker:recycle:start'))) {
    assert.ok(sent < 120, `no recycle after ${sent} requests with maxRequests 30 on 2 workers`);
    assert.equal((await get(port)).status, 200);
    sent++;
  }
  // Traffic goes on during both recycles; every request is answered.
  while (cluster.logs.filter(event('worker:recycle:done')).length < 2) {
    assert.equal((await get(port)).status, 200);
  }
  const done = cluster.logs.filter(event('worker:recycle:done'));
  assert.deepEqual(done.map((line) => line.reason).sort(), ['max-requests', 'max-requests']);
  assert.deepEqual(done.map((line) => line.workerPid).sort(), [...original].sort());
  for (const line of done) {
    assert.ok((line.requests as number) >= 30, `retired after ${line.requests} requests`);
    assert.equal(line.code, 0);
    assert.equal(typeof line.drainMs, 'number');
    assert.equal(typeof line.age, 'number');
  }
  assert.equal(maxConcurrentRecycles(cluster), 1, 'recycle.concurrency defaults to 1');
  const answeredBy = (await get(port)).pid;
  assert.ok(!original.includes(answeredBy), 'a replacement answers now');
});

test('supervisor.recycle(id) replaces that worker; an unknown id does nothing; disconnect() asks for itself', async (t) => {
  const { cluster, port } = await startRecycleCluster(
    t,
    { recycle: { minLifetime: '1h' } },
    { PROGRAMMATIC_RECYCLE: '1' },
  );
  const results = await cluster.waitForLog(event('fixture:recycle-results'), 20_000);
  assert.deepEqual(results.unknown, []);
  assert.deepEqual(results.results, [{ worker: 1, reason: 'deploy', outcome: 'recycled' }]);
  const emitted = await cluster.waitForLog(event('fixture:recycled-event'));
  assert.equal(emitted.worker, 1);
  assert.equal(emitted.reason, 'deploy');
  const done = await cluster.waitForLog(event('worker:recycle:done', { reason: 'deploy' }));
  assert.equal(done.worker, 1);
  assert.equal(emitted.drainMs, done.drainMs);

  // throng's disconnect(): the worker asks for its own recycle; minLifetime does not hold back a request.
  const asking = await get(port, '/disconnect');
  const retired = await cluster.waitForLog(
    event('worker:recycle:done', { reason: 'worker-request' }),
    20_000,
  );
  assert.equal(retired.workerPid, asking.pid);
  assert.equal(cluster.logs.filter(event('worker:recycle:done')).length, 2);
});
