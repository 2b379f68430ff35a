import type { ErrorCode } from '../errors.js';
import { StewardError } from '../errors.js';
import type { BackoffOptions } from './backoff.js';
import {
  duration,
  fraction,
  type GroupRule,
  group,
  type Input,
  integer,
  type Option,
} from './option-spec.js';

/** The three fields every jittered exponential backoff has, with the given defaults. */
function backoffFields(defaults: BackoffOptions, minMaxDelay: number) {
  return {
    /** First delay, in ms or `'1s'`. */
    initialDelay: duration({ min: 0, default: defaults.initialDelay }),
    /** Ceiling of the doubling delay, in ms or `'30s'`. */
    maxDelay: duration({ min: minMaxDelay, default: defaults.maxDelay }),
    /** Spread as a fraction of the delay, 0..1. */
    jitter: fraction({ min: 0, max: 1, default: defaults.jitter }),
  };
}

/**
 * The one behaviour of every backoff: a delay given alone that contradicts the other's default moves that
 * default with it (`{ initialDelay: 2000 }` raises a 1000 ms ceiling, `{ maxDelay: 50 }` lowers a 100 ms
 * first delay), because the caller meant the one they wrote; both given and contradicting is refused.
 * `code` is the error code the group has always reported the contradiction with.
 */
function delaysFollowEachOther(code: ErrorCode): GroupRule<ReturnType<typeof backoffFields>> {
  return (resolved, given, prefix) => {
    if (resolved.maxDelay >= resolved.initialDelay) return;
    if (given.initialDelay === undefined) resolved.initialDelay = resolved.maxDelay;
    else if (given.maxDelay === undefined) resolved.maxDelay = resolved.initialDelay;
    else
      throw new StewardError(
        code,
        `Expected \`${prefix}maxDelay\` (${resolved.maxDelay}) to be >= \`${prefix}initialDelay\` (${resolved.initialDelay})`,
        {
          details: {
            option: `${prefix}maxDelay`,
            expected: `>= \`${prefix}initialDelay\``,
            options: [`${prefix}maxDelay`, `${prefix}initialDelay`],
          },
        },
      );
  };
}

/** `{ initialDelay, maxDelay, jitter }` of a listener (reconnect, retry, redelivery). */
export function backoff(
  defaults: BackoffOptions,
  minMaxDelay = 0,
): Option<Partial<Input<ReturnType<typeof backoffFields>>>, BackoffOptions> {
  return group(backoffFields(defaults, minMaxDelay), {
    rules: [delaysFollowEachOther('STEWARD_ERR_INVALID_OPTION')],
  });
}

/** Crash restart policy: a backoff plus an OTP-style intensity limit. */
export interface RestartPolicy extends BackoffOptions {
  /** More than this many restarts within `period` gives up. */
  intensity: number;
  /** Window of the intensity limit, in ms. */
  period: number;
}

/** `{ initialDelay, maxDelay, jitter, intensity, period }` of workers and services. */
export function restartPolicy(defaults: RestartPolicy) {
  return group(
    {
      ...backoffFields(defaults, 0),
      /** More than this many crashes within `period` gives up. */
      intensity: integer({ min: 1, default: defaults.intensity }),
      /** Window of the intensity limit, in ms or `'1m'`. */
      period: duration({ min: 1, default: defaults.period }),
    },
    { rules: [delaysFollowEachOther('STEWARD_ERR_OPTION_CONFLICT')] },
  );
}
