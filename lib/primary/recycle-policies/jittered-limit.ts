import type { Random } from '../../common/backoff.js';
import { type RecyclePolicy, type WorkerLimit, type WorkerSample, withJitter } from './types.js';

/**
 * A policy that retires a worker once one figure of its samples reaches a limit, drawn per worker as
 * `base` plus up to `jitter`, so workers forked together do not retire together.
 */
export abstract class JitteredLimitPolicy implements RecyclePolicy {
  abstract readonly name: string;
  /** The drawn limit's name in logs (`maxAge`, `maxRequests`). */
  protected abstract readonly limitName: string;
  readonly #base: number;
  readonly #jitter: number;

  constructor(base: number, jitter: number) {
    this.#base = base;
    this.#jitter = jitter;
  }

  /** The figure of a sample compared with the limit. */
  protected abstract measure(sample: WorkerSample): number;

  forWorker(random: Random): WorkerLimit {
    const limit = withJitter(this.#base, this.#jitter, random);
    return {
      limits: { [this.limitName]: limit },
      check: (sample) => (this.measure(sample) >= limit ? this.name : null),
    };
  }
}
