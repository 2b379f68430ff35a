import type { Random } from '../../common/backoff.js';
import { type RecyclePolicy, type WorkerLimit, withJitter } from './types.js';

/**
 * Retires a worker after `maxRequests` (+ up to `jitter`) requests. The primary also sends the drawn
 * limit to the worker, which reports the moment it crosses it: the heartbeat alone could let a busy
 * worker overshoot by a whole heartbeat interval of traffic.
 */
export class MaxRequestsPolicy implements RecyclePolicy {
  readonly name = 'max-requests';
  readonly #maxRequests: number;
  readonly #jitter: number;

  constructor(maxRequests: number, jitter: number) {
    this.#maxRequests = maxRequests;
    this.#jitter = jitter;
  }

  forWorker(random: Random): WorkerLimit {
    const maxRequests = withJitter(this.#maxRequests, this.#jitter, random);
    return {
      limits: { maxRequests },
      check: (sample) => (sample.requests >= maxRequests ? this.name : null),
    };
  }
}
