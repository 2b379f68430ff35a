import { availableParallelism } from 'node:os';
import type { Registry } from 'prom-client';
import type { LoggerOption } from './common/logger.js';
import { invalidOption, moduleLocation, optionConflict } from './common/option-checks.js';
import {
  defaultsOf,
  duration,
  func,
  type Input,
  integer,
  oneOf,
  option,
  type Resolved,
  resolveSpec,
} from './common/option-spec.js';
import { restartPolicy } from './common/option-spec-backoff.js';
import { valveOption } from './common/valve-options.js';
import type { WorkerStart } from './common/worker-context.js';
import { controlGroup } from './control-options.js';
import { recycleGroup } from './recycle-options.js';

export type { ControlOptions } from './control-options.js';
export { resolveControl } from './control-options.js';
export type { RecycleOptions } from './recycle-options.js';

/** Where services run: a dedicated forked process (`sibling`), or inside the cluster primary. */
export type Placement = 'sibling' | 'primary';

const WORKERS_EXPECTED = 'an integer between 1 and 1024';
const SIGNALS_EXPECTED = `a non-empty array of signal names like 'SIGTERM'`;
const SIGNAL_NAME = /^SIG[A-Z0-9]+$/;

/**
 * `process.env.WEB_CONCURRENCY` is a string: a decimal integer string counts as that integer, as throng
 * takes it. Other strings stay as they are, so the error shows what was received.
 */
function countFrom(value: unknown): unknown {
  return typeof value === 'string' && /^\s*\d+\s*$/.test(value) ? Number(value) : value;
}

const workerCount = integer({ min: 1, max: 1024 });

/** Options of `steward()` (and `forThrong()`); throng's names (`count`, `start`, `master`) are accepted. */
export const stewardSpec = {
  /** HTTP workers to keep running (throng: `count`). @default os.availableParallelism() */
  workers: {
    ...option<number | string, number>({
      kind: 'integer',
      expected: WORKERS_EXPECTED,
      parse: (name, value) => workerCount.parse(name, countFrom(value)) as number,
    }),
    absent: () => availableParallelism(),
  },
  /** Start function run in each HTTP worker; may return the http.Server(s) it created (throng: `start`). */
  worker: func<WorkerStart>(),
  /** Run once in the primary before workers are forked (throng: `master`). */
  primary: func<() => void | Promise<void>>(),
  /** Module (path or URL) whose default export is `defineServices(...)`. Omit for a web-only server. */
  services: option<string | URL, URL | undefined>({
    kind: 'custom',
    expected: 'a file: URL or an absolute path',
    parse: moduleLocation,
  }),
  /** Where services run: a dedicated forked process, or inside the primary. @default 'sibling' */
  placement: oneOf<Placement>(['sibling', 'primary'], 'sibling'),
  /** When HTTP workers are replaced (surge-then-drain); thresholds are drawn per worker at fork. */
  recycle: recycleGroup,
  /** Control server settings; omitted or false for none. */
  control: controlGroup,
  /** A pino logger or pino options. */
  logger: option<LoggerOption, LoggerOption | undefined>({
    kind: 'custom',
    expected: 'a pino logger or pino options object',
    parse(name, value) {
      if (typeof value !== 'object' || value === null)
        throw invalidOption(name, 'a pino logger or pino options object', value);
      return value as LoggerOption;
    },
  }),
  /** Graceful shutdown deadline, in ms or `'30s'`: after it, remaining processes are killed. @default 30000 */
  grace: duration({ min: 0, default: 30_000 }),
  /** How long (ms or `'1h'`) to keep re-forking dead workers (throng's `lifetime`). @default Infinity */
  lifetime: duration({ min: 0, default: Number.POSITIVE_INFINITY, infinity: true }),
  /** Signals that start a graceful shutdown. @default ['SIGTERM', 'SIGINT'] */
  signals: option<NodeJS.Signals[], NodeJS.Signals[]>({
    kind: 'custom',
    expected: SIGNALS_EXPECTED,
    default: ['SIGTERM', 'SIGINT'],
    parse(name, value) {
      if (
        !Array.isArray(value) ||
        value.length === 0 ||
        !value.every((s) => typeof s === 'string' && SIGNAL_NAME.test(s))
      )
        throw invalidOption(name, SIGNALS_EXPECTED, value);
      if (value.includes('SIGHUP') || value.includes('SIGUSR2'))
        throw optionConflict('`signals` cannot include SIGHUP or SIGUSR2: they restart workers and services');
      return value as NodeJS.Signals[];
    },
  }),
  /** A worker must report ready within this time of being forked (ms or `'30s'`). @default 30000 */
  bootTimeout: duration({ min: 1, default: 30_000 }),
  /** Worker heartbeat period in ms (requests, memory). @default 1000 */
  heartbeatInterval: integer({ min: 10, max: 60_000, default: 1_000 }),
  /** Period in ms of the services status push to workers (changes are pushed at once). @default 2000 */
  statusInterval: integer({ min: 10, max: 300_000, default: 2_000 }),
  /** Crash restart policy for workers. */
  restart: restartPolicy({ initialDelay: 100, maxDelay: 10_000, jitter: 0.2, intensity: 5, period: 60_000 }),
  /** Application prom-client registry to include in cluster metrics. @default prom-client's global register */
  register: option<Registry, Registry | undefined>({
    kind: 'custom',
    expected: 'a prom-client Registry',
    parse(name, value) {
      if (
        typeof value !== 'object' ||
        value === null ||
        typeof (value as Registry).getMetricsAsJSON !== 'function'
      )
        throw invalidOption(name, 'a prom-client Registry', value);
      return value as Registry;
    },
  }),
  /** How the workers' load throttles the events dispatched to them; `false`: a fixed limit. See docs/valve.md. */
  valve: valveOption,
};

/** throng's names for `workers`, `worker` and `primary`. */
const THRONG_ALIASES = { count: 'workers', start: 'worker', master: 'primary' } as const;

export type StewardOptions = Input<typeof stewardSpec> & {
  /** throng's name for `workers`. */
  count?: number | string;
  /** throng's name for `worker`. */
  start?: WorkerStart;
  /** throng's name for `primary`. */
  master?: () => void | Promise<void>;
};

/** Options after defaults, aliases and unit parsing: every field present and in range. */
export type ResolvedOptions = Resolved<typeof stewardSpec>;

export const defaults = defaultsOf(stewardSpec);

/**
 * throng's older call forms, still found in applications: `throng(start)`, `throng(3, start)` and
 * `throng('3', start)` (a count read from the environment). Anything else is the options object.
 */
function throngCallForm(input: unknown, legacyStart: unknown): unknown {
  if (typeof input === 'function') return { worker: input };
  // Without a start function a bare count is not throng's form but a mistake: the object check names it.
  if ((typeof input === 'number' || typeof input === 'string') && legacyStart !== undefined)
    return { workers: input, worker: legacyStart };
  return input;
}

/** Combinations no single option can refuse. */
const stewardRules = [
  (resolved: ResolvedOptions, given: Record<string, unknown>) => {
    if (given.placement !== undefined && resolved.services === undefined)
      throw optionConflict('`placement` was given without `services`: there is nothing to place');
    if (resolved.worker === undefined && resolved.services === undefined)
      throw optionConflict('Give `worker` (the HTTP start function), `services`, or both');
  },
];

/** The one place where options are checked: every error names the option, the range and the value. */
export function resolveOptions(input: unknown, legacyStart?: unknown): ResolvedOptions {
  return resolveSpec(stewardSpec, throngCallForm(input, legacyStart), 'options', {
    aliases: THRONG_ALIASES,
    rules: stewardRules,
  });
}
