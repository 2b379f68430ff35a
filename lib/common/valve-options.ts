import { invalidOption } from './option-checks.js';
import {
  duration,
  fraction,
  type GroupRule,
  type Input,
  integer,
  type Option,
  oneOf,
  option,
  type Resolved,
  resolveSpec,
} from './option-spec.js';

/** The `valve` option of `steward()`: how the workers' load throttles the events dispatched to them. */
export const valveSpec = {
  /** Events a worker runs at once even under load, so they never starve. @default 1 */
  floor: integer({ min: 1, max: 10_000, default: 1 }),
  /** Events a worker runs at once at most (each listener's `concurrency` bounds it too). @default 64 */
  ceiling: integer({ min: 1, max: 10_000, default: 64 }),
  /** An event-loop delay (p99 over 250 ms) above this is overload whatever the cause, in ms or `'100ms'`. @default 100 */
  maxDelay: duration({ min: 1, default: 100 }),
  /** Event-loop utilization (0..1) above which a worker serving HTTP counts as overloaded. @default 0.5 */
  targetUtilization: fraction({ min: 0.05, max: 1, default: 0.5 }),
  /**
   * Share of the interval (0..1) a worker serving HTTP may wait for a CPU (Linux run-queue wait) before it
   * counts as overloaded: other processes on its cores delay its requests without showing in its loop.
   * @default 0.1
   */
  maxCpuWait: fraction({ min: 0.01, max: 1, default: 0.1 }),
  /**
   * A closed valve paces each worker to about 0.1 % of its loop (it waits 999 times an event's duration
   * before the next); this bounds that wait, so events never starve, in ms or `'5s'`. @default 5000
   */
  maxPause: duration({ min: 1, default: 5_000 }),
};

export type ValveOptions = Input<typeof valveSpec>;

/**
 * The `valve` option of a listener whose handlers run where it runs (the services sibling or the primary):
 * `'workers'` holds its intake (claims, link credit, handlers at once) to what the HTTP workers' load
 * admits, as the workers' valve does for dispatched events, for handlers that share a database with the
 * workers. `'none'`: only `concurrency` bounds it. A listener whose handlers are `toWorkers(...)` follows
 * the workers' valve either way. @default 'none'
 */
export const listenerValve = oneOf(['none', 'workers'], 'none');
export type ListenerValve = 'none' | 'workers';

/** The valve after defaults; `adaptive: false` pins every worker's limit at `ceiling` (fixed concurrency). */
export interface ValveSettings extends Resolved<typeof valveSpec> {
  adaptive: boolean;
}

const valveRules: GroupRule<typeof valveSpec>[] = [
  // A floor above the default ceiling raises the ceiling with it; a ceiling given below the floor is refused.
  (valve, given, prefix) => {
    if (given.ceiling === undefined) valve.ceiling = Math.max(valve.floor, valve.ceiling);
    if (valve.ceiling < valve.floor)
      throw invalidOption(`${prefix}ceiling`, `>= \`${prefix}floor\` (${valve.floor})`, valve.ceiling);
  },
];

/** `valve`: an object of the settings above, `true` for the defaults, or `false` for a fixed limit of `ceiling`. */
export function resolveValve(raw: unknown, name = 'valve'): ValveSettings {
  if (raw === false) return { ...resolveSpec(valveSpec, {}, name), adaptive: false };
  const given = raw === undefined || raw === true ? {} : raw;
  return { ...resolveSpec(valveSpec, given, name, { rules: valveRules }), adaptive: true };
}

export const VALVE_DEFAULTS: ValveSettings = resolveValve(undefined);

/** The `valve` entry of the steward's spec. */
export const valveOption: Option<ValveOptions | boolean, ValveSettings> = {
  ...option<ValveOptions | boolean, ValveSettings>({
    kind: 'group',
    expected: 'an object of valve settings, true or false',
    parse: (name, value) => resolveValve(value, name),
  }),
  absent: (name) => resolveValve(undefined, name),
};
