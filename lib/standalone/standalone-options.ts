import { invalidOption } from '../common/option-checks.js';
import { func, type Input, option, resolveSpec } from '../common/option-spec.js';
import { controlGroup } from '../control-options.js';
import { stewardSpec } from '../options.js';
import type { ServicesSnapshot } from '../services/types.js';

const SIGNALS_EXPECTED = `an array of signal names like 'SIGTERM', or false`;

/** Options of `runServices()`: the steward's own where they mean the same. */
export const runServicesSpec = {
  /** A pino logger or pino options. */
  logger: stewardSpec.logger,
  /** Deadline (ms or `'30s'`) for every service to settle when stopping. @default 30000 */
  grace: stewardSpec.grace,
  /**
   * Signals that stop the services gracefully and then exit the process (code 1 if a service did not
   * settle in time); a second one exits at once with code 1. `false` leaves signals to the caller, who
   * then calls `stop()`.
   * @default ['SIGTERM', 'SIGINT']
   */
  signals: option<NodeJS.Signals[] | false, NodeJS.Signals[] | false>({
    kind: 'custom',
    expected: SIGNALS_EXPECTED,
    default: ['SIGTERM', 'SIGINT'],
    parse(name, value) {
      if (value !== false && (!Array.isArray(value) || !value.every((s) => /^SIG[A-Z0-9]+$/.test(s))))
        throw invalidOption(name, SIGNALS_EXPECTED, value);
      return value as NodeJS.Signals[] | false;
    },
  }),
  /** Called with a snapshot on every change (debounced) and every `statusInterval` ms. */
  onStatus: func<(snapshot: ServicesSnapshot) => void>(),
  /** Period in ms of `onStatus` calls without changes; also what `status()` uses to flag staleness. @default 2000 */
  statusInterval: stewardSpec.statusInterval,
  /**
   * An HTTP control server for this process: `/healthz` (503 while a service is `failed` or `stopped`,
   * reports a problem, or the process is stopping), `/metrics` and `/status`; the same options as
   * `steward({ control })`. Off by default.
   */
  control: controlGroup,
};

/** Options of `runServices()`. */
export type RunServicesOptions = Input<typeof runServicesSpec>;

export function resolveRunServicesOptions(input: RunServicesOptions | undefined) {
  return resolveSpec(runServicesSpec, input ?? {}, 'options');
}
