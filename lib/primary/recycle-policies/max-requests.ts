import type { Random } from '../../common/backoff.js';
import { JitteredLimitPolicy } from './jittered-limit.js';
import type { PushedLimit, WorkerLimit, WorkerSample } from './types.js';

/**
 * Retires a worker after `maxRequests` (+ up to `jitter`) requests. The drawn limit is also pushed to
 * the worker, which reports the moment it crosses it: the heartbeat alone could let a busy worker
 * overshoot by a whole heartbeat interval of traffic.
 */
export class MaxRequestsPolicy extends JitteredLimitPolicy {
  readonly name = 'max-requests';
  protected readonly limitName = 'maxRequests';

  protected measure(sample: WorkerSample): number {
    return sample.requests;
  }

  override forWorker(random: Random): WorkerLimit {
    const drawn = super.forWorker(random);
    const pushed: PushedLimit = { maxRequests: drawn.limits.maxRequests!, reached: false };
    return {
      limits: drawn.limits,
      pushed,
      check: (sample) => (pushed.reached ? this.name : drawn.check(sample)),
    };
  }
}
