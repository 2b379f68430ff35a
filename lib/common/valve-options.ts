import {
  durationOption,
  integerOption,
  invalidOption,
  numberOption,
  rejectUnknownKeys,
  requireObject,
} from '../options.js';

/** The `valve` option of `steward()`: how the workers' load throttles the events dispatched to them. */
export interface ValveOptions {
  /** Events a worker runs at once even under load, so they never starve. @default 1 */
  floor?: number;
  /** Events a worker runs at once at most (each listener's `concurrency` bounds it too). @default 64 */
  ceiling?: number;
  /** An event-loop delay (p99 over 250 ms) above this is overload whatever the cause, in ms or `'100ms'`. @default 100 */
  maxDelay?: number | string;
  /** Event-loop utilization (0..1) above which a worker serving HTTP counts as overloaded. @default 0.5 */
  targetUtilization?: number;
}

/** The valve after defaults; `adaptive: false` pins every worker's limit at `ceiling` (fixed concurrency). */
export interface ValveSettings {
  adaptive: boolean;
  floor: number;
  ceiling: number;
  maxDelay: number;
  targetUtilization: number;
}

export const VALVE_DEFAULTS: ValveSettings = {
  adaptive: true,
  floor: 1,
  ceiling: 64,
  maxDelay: 100,
  targetUtilization: 0.5,
};

const VALVE_KEYS = ['floor', 'ceiling', 'maxDelay', 'targetUtilization'];

/** Validates `valve`: an object of the keys above, or `false` for a fixed limit of `ceiling` per worker. */
export function resolveValve(raw: unknown): ValveSettings {
  if (raw === undefined) return { ...VALVE_DEFAULTS };
  if (raw === false) return { ...VALVE_DEFAULTS, adaptive: false };
  if (raw === true) return { ...VALVE_DEFAULTS };
  requireObject('valve', raw);
  rejectUnknownKeys(raw, VALVE_KEYS, 'valve.');
  const floor =
    raw.floor === undefined ? VALVE_DEFAULTS.floor : integerOption('valve.floor', raw.floor, 1, 10_000);
  const ceiling =
    raw.ceiling === undefined
      ? Math.max(floor, VALVE_DEFAULTS.ceiling)
      : integerOption('valve.ceiling', raw.ceiling, 1, 10_000);
  if (ceiling < floor) throw invalidOption('valve.ceiling', `>= \`valve.floor\` (${floor})`, ceiling);
  return {
    adaptive: true,
    floor,
    ceiling,
    maxDelay:
      raw.maxDelay === undefined
        ? VALVE_DEFAULTS.maxDelay
        : durationOption('valve.maxDelay', raw.maxDelay, 1),
    targetUtilization:
      raw.targetUtilization === undefined
        ? VALVE_DEFAULTS.targetUtilization
        : numberOption('valve.targetUtilization', raw.targetUtilization, 0.05, 1),
  };
}
