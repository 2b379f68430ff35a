import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CrashBackoff } from '../lib/primary/child-handle.js';
import { MaxAgePolicy } from '../lib/primary/recycle-policies/max-age.js';
import { MaxRequestsPolicy } from '../lib/primary/recycle-policies/max-requests.js';
import type { WorkerHandle } from '../lib/primary/worker-handle.js';
import type { PoolView } from '../lib/primary/worker-pool.js';
import { DrainThenRefork } from '../lib/throng/drain-then-refork.js';

/** Stand-ins for workers: the strategy reads only their state. */
function workers(...states: WorkerHandle['state'][]): WorkerHandle[] {
  return states.map((state) => ({ state }) as WorkerHandle);
}

test('drain-then-refork counts draining and booting workers and those whose recycle just started', () => {
  const handles = workers('ready', 'ready', 'draining', 'booting', 'ready');
  const strategy = new DrainThenRefork({ handles } as unknown as PoolView);
  assert.equal(strategy.outOfService(new Set()), 2);
  // A recycle counts from its start, before its worker is told to drain: with concurrency 1 the
  // recycler must not start a second one in the same turn.
  assert.equal(strategy.outOfService(new Set([handles[0]!])), 3);
  assert.equal(strategy.outOfService(new Set([handles[2]!])), 2, 'a draining worker is counted once');
  assert.equal(strategy.canReplace(), true);
});

const restart = { initialDelay: 100, maxDelay: 1_000, jitter: 0, intensity: 3, period: 60_000 };

test('crash backoff for workers: the first crash already waits initialDelay, then doubling to maxDelay', () => {
  const backoff = new CrashBackoff(restart, 0);
  assert.equal(backoff.delay(), 0, 'no crash, no wait');
  const delays: number[] = [];
  const tooMany: boolean[] = [];
  for (let crash = 0; crash < 6; crash++) {
    tooMany.push(backoff.record());
    delays.push(backoff.delay());
  }
  assert.deepEqual(delays, [100, 200, 400, 800, 1_000, 1_000]);
  assert.deepEqual(tooMany, [false, false, false, true, true, true]);
  assert.equal(backoff.recent, 6);
});

test('crash backoff for the sibling: the first crash is re-forked at once, the second waits initialDelay', () => {
  const backoff = new CrashBackoff(restart, 1);
  const delays: number[] = [];
  for (let crash = 0; crash < 4; crash++) {
    backoff.record();
    delays.push(backoff.delay());
  }
  assert.deepEqual(delays, [0, 100, 200, 400]);
});

test('max-requests: the limit pushed to the worker, once reported reached, retires it whatever the heartbeat said', () => {
  const limit = new MaxRequestsPolicy(100, 0).forWorker(Math.random);
  assert.deepEqual(limit.pushed, { maxRequests: 100, reached: false });
  const sample = { age: 60_000, requests: 40, rss: 0, heapUsed: 0 };
  assert.equal(limit.check(sample), null);
  limit.pushed!.reached = true;
  assert.equal(limit.check(sample), 'max-requests');
  assert.equal(
    new MaxAgePolicy(1_000, 0).forWorker(Math.random).pushed,
    undefined,
    'only max-requests is pushed',
  );
});
