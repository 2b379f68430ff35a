import type { Random } from '../../common/backoff.js';
import { type RecyclePolicy, type WorkerLimit, withJitter } from './types.js';

/** Retires a worker older than `maxAge` (+ up to `jitter`) ms, checked on each heartbeat. */
export class MaxAgePolicy implements RecyclePolicy {
  readonly name = 'max-age';
  readonly #maxAge: number;
  readonly #jitter: number;

  constructor(maxAge: number, jitter: number) {
    this.#maxAge = maxAge;
    this.#jitter = jitter;
  }

  forWorker(random: Random): WorkerLimit {
    const maxAge = withJitter(this.#maxAge, this.#jitter, random);
    return {
      limits: { maxAge },
      check: (sample) => (sample.age >= maxAge ? this.name : null),
    };
  }
}
