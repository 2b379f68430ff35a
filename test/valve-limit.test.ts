import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AdaptiveLimit } from '../lib/common/adaptive-limit.js';
import { resolveValve } from '../lib/common/valve-options.js';
import type { StewardError } from '../lib/errors.js';
import { resolveOptions } from '../lib/options.js';

test('the AIMD limit halves on overload down to its floor, and grows only while in use', () => {
  const limit = new AdaptiveLimit({ floor: 2, ceiling: 10, initial: 8, backoff: 0.5 });
  assert.equal(limit.update({ overloaded: true, inFlight: 8 }), 4);
  assert.equal(limit.update({ overloaded: true, inFlight: 4 }), 2);
  assert.equal(limit.update({ overloaded: true, inFlight: 2 }), 2, 'never below the floor');
  // Calm and below where it started: it recovers even unused.
  assert.equal(limit.update({ overloaded: false, inFlight: 0 }), 3);
  for (let i = 0; i < 5; i++) limit.update({ overloaded: false, inFlight: 0 });
  assert.equal(limit.limit, 8, 'back to its start, not beyond, while unused');
  for (let i = 0; i < 5; i++) limit.update({ overloaded: false, inFlight: limit.limit });
  assert.equal(limit.limit, 10, 'in use it grows to the ceiling and stops there');
  assert.equal(limit.toFloor(), 2, 'dropped to its floor at once');
  assert.equal(limit.update({ overloaded: false, inFlight: 0 }), 3, 'and recovers from there');
});

test('valve options: defaults, false for a fixed limit, and errors naming the option and range', () => {
  assert.deepEqual(resolveValve(undefined), {
    adaptive: true,
    floor: 1,
    ceiling: 64,
    maxDelay: 100,
    targetUtilization: 0.5,
    maxCpuWait: 0.1,
    maxPause: 5000,
  });
  assert.equal(resolveValve(false).adaptive, false);
  assert.equal(resolveValve({ maxDelay: '50ms', floor: 2, ceiling: 8 }).maxDelay, 50);
  assert.throws(
    () => resolveValve({ floor: 0 }),
    (error: StewardError) =>
      error.code === 'STEWARD_ERR_INVALID_OPTION' &&
      /valve\.floor/.test(error.message) &&
      /1 and/.test(error.message),
  );
  assert.throws(
    () => resolveValve({ floor: 8, ceiling: 4 }),
    (error: StewardError) =>
      error.code === 'STEWARD_ERR_INVALID_OPTION' && /valve\.ceiling/.test(error.message),
  );
  assert.throws(
    () => resolveValve({ targetUtilisation: 0.5 }),
    (error: StewardError) =>
      error.code === 'STEWARD_ERR_UNKNOWN_OPTION' && /valve\.targetUtilization/.test(error.message),
  );
  const resolved = resolveOptions({ worker: () => {}, valve: { ceiling: 16 } });
  assert.equal(resolved.valve.ceiling, 16);
  assert.throws(() => resolveOptions({ worker: () => {}, valve: 'on' }), /`valve`/);
});
