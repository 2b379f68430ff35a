import { optionConflict } from './common/option-checks.js';
import { bytes, duration, group, type Input, integer, type Resolved } from './common/option-spec.js';

/** When HTTP workers are replaced (surge-then-drain); thresholds are drawn per worker at fork. */
export const recycleSpec = {
  /** Recycle a worker after this many requests (counted on its tracked servers). */
  maxRequests: integer({ min: 1 }),
  /** Upper bound of a random amount added per worker to `maxRequests`, so workers do not retire together. @default 0 */
  maxRequestsJitter: integer({ min: 0, default: 0 }),
  /** Recycle when resident memory stays above this (bytes or `'512MB'`) for `memoryChecks` samples in a row. */
  maxRss: bytes(),
  /** Recycle when V8 heap used stays above this (bytes or `'256MB'`). */
  maxHeapUsed: bytes(),
  /** Consecutive samples over a memory limit before recycling (hysteresis against spikes). @default 3 */
  memoryChecks: integer({ min: 1, max: 1000, default: 3 }),
  /** Recycle a worker older than this (ms or `'6h'`). */
  maxAge: duration({ min: 1 }),
  /** Upper bound of a random amount added per worker to `maxAge` (ms or `'30m'`). @default 0 */
  maxAgeJitter: duration({ min: 0, default: 0 }),
  /** No policy retires a worker younger than this (ms or `'30s'`); manual recycles ignore it. @default 10000 */
  minLifetime: duration({ min: 0, default: 10_000 }),
  /** Workers draining at once, across all triggers. @default 1 */
  concurrency: integer({ min: 1, max: 1024, default: 1 }),
  /** A draining worker still running after this long is killed (ms or `'30s'`). @default 30000 */
  drainTimeout: duration({ min: 1, default: 30_000 }),
};

export type RecycleOptions = Input<typeof recycleSpec>;
export type ResolvedRecycle = Resolved<typeof recycleSpec>;

export const recycleGroup = group(recycleSpec, {
  rules: [
    // A jitter spreads a limit; without the limit it would silently do nothing.
    (recycle) => {
      if (recycle.maxRequests === undefined && recycle.maxRequestsJitter > 0)
        throw optionConflict('`recycle.maxRequestsJitter` needs `recycle.maxRequests`');
      if (recycle.maxAge === undefined && recycle.maxAgeJitter > 0)
        throw optionConflict('`recycle.maxAgeJitter` needs `recycle.maxAge`');
    },
  ],
});
