import { duration, type Input, optionalGroup } from '../common/option-spec.js';
import { restartPolicy } from '../common/option-spec-backoff.js';
import { singletonSpec } from './singleton-options.js';

const restart = restartPolicy({
  initialDelay: 100,
  maxDelay: 30_000,
  jitter: 0.2,
  intensity: 5,
  period: 60_000,
});

/** The options every service definition may carry. */
export const serviceSpec = {
  /**
   * How the service host restarts a crashed service: jittered exponential backoff (`initialDelay` 100 ms
   * doubling up to `maxDelay` 30 s, `jitter` 0.2), and more than `intensity` (5) crashes within `period`
   * (60 s) makes the state `failed`.
   */
  restart,
  /**
   * Restart the service when it reports no `progress()` for this long (ms or `'30s'`) while connected or
   * while its queue depth is above zero. 0 disables the watchdog. @default 0
   */
  stallTimeout: duration({ min: 0, default: 0 }),
  /** How long `run` may take to settle after its signal aborts before it is abandoned (ms or `'10s'`). @default 10000 */
  stopTimeout: duration({ min: 1, default: 10_000 }),
  /**
   * Run only where a PostgreSQL session advisory lock is held (one instance across all hosts);
   * elsewhere the service waits in `standby`.
   */
  singleton: optionalGroup(singletonSpec),
};

/** Options shared by every service definition. */
export type ServiceOptions = Input<typeof serviceSpec>;
/** How the service host restarts a crashed service: jittered exponential backoff, an intensity limit. */
export type RestartOptions = NonNullable<ServiceOptions['restart']>;
export type { SingletonOptions } from './singleton-options.js';
