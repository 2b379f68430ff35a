import { JitteredLimitPolicy } from './jittered-limit.js';
import type { WorkerSample } from './types.js';

/**
 * Retires a worker after `maxRequests` (+ up to `jitter`) requests. The primary also sends the drawn
 * limit to the worker, which reports the moment it crosses it: the heartbeat alone could let a busy
 * worker overshoot by a whole heartbeat interval of traffic (see `RecycleTriggers`).
 */
export class MaxRequestsPolicy extends JitteredLimitPolicy {
  readonly name = 'max-requests';
  protected readonly limitName = 'maxRequests';

  protected measure(sample: WorkerSample): number {
    return sample.requests;
  }
}
