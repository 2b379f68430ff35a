import { JitteredLimitPolicy } from './jittered-limit.js';
import type { WorkerSample } from './types.js';

/** Retires a worker older than `maxAge` (+ up to `jitter`) ms, checked on each heartbeat. */
export class MaxAgePolicy extends JitteredLimitPolicy {
  readonly name = 'max-age';
  protected readonly limitName = 'maxAge';

  protected measure(sample: WorkerSample): number {
    return sample.age;
  }
}
