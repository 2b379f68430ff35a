import assert from 'node:assert/strict';
import { test } from 'node:test';
import { resolveOptions } from '../lib/options.js';
import { createPolicies } from '../lib/primary/recycle-policies/index.js';
import { MaxAgePolicy } from '../lib/primary/recycle-policies/max-age.js';
import { MaxRequestsPolicy } from '../lib/primary/recycle-policies/max-requests.js';
import { MemoryPolicy } from '../lib/primary/recycle-policies/memory.js';

/** A seeded random source (mulberry32): the same thresholds every run. */
function seeded(seed: number): () => number {
  let state = seed;
  return () => {
    state = (state + 0x6d2b79f5) | 0;
    let t = Math.imul(state ^ (state >>> 15), 1 | state);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const sample = { age: 0, requests: 0, rss: 0, heapUsed: 0 };

test('max-requests draws each worker a threshold within [max, max + jitter], spread by the random source', () => {
  const policy = new MaxRequestsPolicy(1000, 100);
  const random = seeded(7);
  const drawn = Array.from({ length: 200 }, () => policy.forWorker(random).limits.maxRequests!);
  assert.ok(drawn.every((value) => Number.isInteger(value) && value >= 1000 && value <= 1100));
  assert.ok(new Set(drawn).size > 50, 'thresholds are spread, not all equal');
  assert.equal(new MaxRequestsPolicy(1000, 100).forWorker(() => 0).limits.maxRequests, 1000);
  assert.equal(new MaxRequestsPolicy(1000, 100).forWorker(() => 0.999_999).limits.maxRequests, 1100);
});

test('max-requests triggers at the drawn threshold, not before', () => {
  const limit = new MaxRequestsPolicy(10, 0).forWorker(Math.random);
  assert.equal(limit.check({ ...sample, requests: 9 }), null);
  assert.equal(limit.check({ ...sample, requests: 10 }), 'max-requests');
});

test('max-age triggers at maxAge plus the drawn jitter', () => {
  const limit = new MaxAgePolicy(60_000, 1_000).forWorker(() => 0.5);
  assert.equal(limit.limits.maxAge, 60_500);
  assert.equal(limit.check({ ...sample, age: 60_499 }), null);
  assert.equal(limit.check({ ...sample, age: 60_500 }), 'max-age');
});

test('memory needs `checks` consecutive samples over a limit; one sample under resets the count', () => {
  const limit = new MemoryPolicy({ maxRss: 100, maxHeapUsed: 50, checks: 3 }).forWorker();
  assert.deepEqual(limit.limits, { maxRss: 100, maxHeapUsed: 50 });
  const over = { ...sample, rss: 101 };
  assert.equal(limit.check(over), null);
  assert.equal(limit.check(over), null);
  assert.equal(limit.check({ ...sample, rss: 100 }), null, 'a sample at the limit is not over it');
  assert.equal(limit.check(over), null);
  assert.equal(limit.check(over), null);
  assert.equal(limit.check(over), 'max-rss');
  const heap = new MemoryPolicy({ maxRss: undefined, maxHeapUsed: 50, checks: 1 }).forWorker();
  assert.equal(heap.check({ ...sample, rss: 10 ** 12, heapUsed: 50 }), null, 'no rss limit configured');
  assert.equal(heap.check({ ...sample, heapUsed: 51 }), 'max-heap-used');
});

test('createPolicies builds one policy per configured limit, none by default', () => {
  const noop = () => undefined;
  assert.deepEqual(createPolicies(resolveOptions({ worker: noop }).recycle), []);
  const all = createPolicies(
    resolveOptions({ worker: noop, recycle: { maxRequests: 5, maxRss: '512MB', maxAge: '6h' } }).recycle,
  );
  assert.deepEqual(
    all.map((policy) => policy.name),
    ['max-requests', 'memory', 'max-age'],
  );
  const memory = all[1]!.forWorker(Math.random);
  assert.deepEqual(memory.limits, { maxRss: 512_000_000 });
  assert.equal(all[2]!.forWorker(Math.random).limits.maxAge, 6 * 3_600_000);
});
