import { availableParallelism } from 'node:os';
import { isAbsolute } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Registry } from 'prom-client';
import type { LoggerOption } from './common/logger.js';
import { isLoopbackHost } from './common/loopback.js';
import { isSecretKey, REDACTED, redactText } from './common/redact.js';
import { parseBytes, parseDuration } from './common/units.js';
import { resolveValve, type ValveOptions, type ValveSettings } from './common/valve-options.js';
import { StewardError } from './errors.js';
import type { WorkerStart } from './worker/worker-context.js';

/** Where services run: a dedicated forked process (`sibling`), or inside the cluster primary. */
export type Placement = 'sibling' | 'primary';

/** When HTTP workers are replaced (surge-then-drain); thresholds are drawn per worker at fork. */
export interface RecycleOptions {
  /** Recycle a worker after this many requests (counted on its tracked servers). */
  maxRequests?: number;
  /** Upper bound of a random amount added per worker to `maxRequests`, so workers do not retire together. @default 0 */
  maxRequestsJitter?: number;
  /** Recycle when resident memory stays above this (bytes or `'512MB'`) for `memoryChecks` samples in a row. */
  maxRss?: number | string;
  /** Recycle when V8 heap used stays above this (bytes or `'256MB'`). */
  maxHeapUsed?: number | string;
  /** Consecutive samples over a memory limit before recycling (hysteresis against spikes). @default 3 */
  memoryChecks?: number;
  /** Recycle a worker older than this (ms or `'6h'`). */
  maxAge?: number | string;
  /** Upper bound of a random amount added per worker to `maxAge` (ms or `'30m'`). @default 0 */
  maxAgeJitter?: number | string;
  /** No policy retires a worker younger than this (ms or `'30s'`); manual recycles ignore it. @default 10000 */
  minLifetime?: number | string;
  /** Workers draining at once, across all triggers. @default 1 */
  concurrency?: number;
  /** A draining worker still running after this long is killed (ms or `'30s'`). @default 30000 */
  drainTimeout?: number | string;
}

/** The primary's control server: `/metrics` (whole cluster), `/status` (JSON) and `/healthz`. */
export interface ControlOptions {
  /** TCP port of the control server (`/metrics`, `/status`, `/healthz`); 0 picks a free port. */
  port: number;
  /** Interface to bind. Loopback unless you mean to expose it. @default '127.0.0.1' */
  host?: string;
  /** When set, every request must carry `Authorization: Bearer <token>`. */
  token?: string;
  /**
   * Lets the control server listen on a non-loopback `host` without a `token`. Refused otherwise
   * (`STEWARD_ERR_CONTROL_UNPROTECTED`): `/status` names every process and service to anyone who can
   * reach the port. Say so only behind a network policy that admits the scraper alone. @default false
   */
  allowUnauthenticated?: boolean;
  /**
   * How long a scrape waits for each process's metrics, in ms or `'2s'`. A process that has not answered
   * by then is left out of that scrape (counted in `steward_scrape_errors_total`). @default 2000
   */
  metricsTimeout?: number | string;
}

/** Options of `steward()` (and `forThrong()`); throng's names (`count`, `start`, `master`) are accepted. */
export interface StewardOptions {
  /** HTTP workers to keep running (throng: `count`). @default os.availableParallelism() */
  workers?: number | string;
  count?: number | string;
  /** Start function run in each HTTP worker; may return the http.Server(s) it created (throng: `start`). */
  worker?: WorkerStart;
  start?: WorkerStart;
  /** Run once in the primary before workers are forked (throng: `master`). */
  primary?: () => void | Promise<void>;
  /** throng's name for `primary`. */
  master?: () => void | Promise<void>;
  /** Module (path or URL) whose default export is `defineServices(...)`. Omit for a web-only server. */
  services?: string | URL;
  /** Where services run: a dedicated forked process, or inside the primary. @default 'sibling' */
  placement?: Placement;
  recycle?: RecycleOptions;
  /** Control server settings; omitted or false for none. */
  control?: ControlOptions | false;
  /** A pino logger or pino options. */
  logger?: LoggerOption;
  /** Graceful shutdown deadline in ms: after it, remaining processes are killed. @default 30000 */
  grace?: number;
  /** How long (ms) to keep re-forking dead workers (throng's `lifetime`). @default Infinity */
  lifetime?: number;
  /** Signals that start a graceful shutdown. @default ['SIGTERM', 'SIGINT'] */
  signals?: NodeJS.Signals[];
  /** A worker must report ready within this many ms of being forked. @default 30000 */
  bootTimeout?: number | string;
  /** Worker heartbeat period in ms (requests, memory). @default 1000 */
  heartbeatInterval?: number;
  /** Period in ms of the services status push to workers (changes are pushed at once). @default 2000 */
  statusInterval?: number;
  /** Crash restart policy for workers. */
  restart?: {
    initialDelay?: number;
    maxDelay?: number;
    jitter?: number;
    intensity?: number;
    period?: number;
  };
  /** Application prom-client registry to include in cluster metrics. @default prom-client's global register */
  register?: Registry;
  /** How the workers' load throttles the events dispatched to them; `false`: a fixed limit. See docs/valve.md. */
  valve?: ValveOptions | boolean;
}

/** Options after defaults, aliases and unit parsing: every field present and in range. */
export interface ResolvedOptions {
  workers: number;
  worker: WorkerStart | undefined;
  primary: (() => void | Promise<void>) | undefined;
  services: URL | undefined;
  placement: Placement;
  recycle: {
    maxRequests: number | undefined;
    maxRequestsJitter: number;
    maxRss: number | undefined;
    maxHeapUsed: number | undefined;
    memoryChecks: number;
    maxAge: number | undefined;
    maxAgeJitter: number;
    minLifetime: number;
    concurrency: number;
    drainTimeout: number;
  };
  control: { port: number; host: string; token: string | undefined; metricsTimeout: number } | undefined;
  logger: LoggerOption;
  grace: number;
  lifetime: number;
  signals: NodeJS.Signals[];
  bootTimeout: number;
  heartbeatInterval: number;
  statusInterval: number;
  restart: { initialDelay: number; maxDelay: number; jitter: number; intensity: number; period: number };
  register: Registry | undefined;
  valve: ValveSettings;
}

export const defaults = {
  placement: 'sibling' as Placement,
  grace: 30_000,
  lifetime: Number.POSITIVE_INFINITY,
  signals: ['SIGTERM', 'SIGINT'] as NodeJS.Signals[],
  bootTimeout: 30_000,
  heartbeatInterval: 1_000,
  statusInterval: 2_000,
  restart: { initialDelay: 100, maxDelay: 10_000, jitter: 0.2, intensity: 5, period: 60_000 },
  recycle: {
    maxRequestsJitter: 0,
    memoryChecks: 3,
    maxAgeJitter: 0,
    minLifetime: 10_000,
    concurrency: 1,
    drainTimeout: 30_000,
  },
  control: { host: '127.0.0.1', metricsTimeout: 2_000 },
};

const TOP_KEYS = [
  'workers',
  'count',
  'worker',
  'start',
  'primary',
  'master',
  'services',
  'placement',
  'recycle',
  'control',
  'logger',
  'grace',
  'lifetime',
  'signals',
  'bootTimeout',
  'heartbeatInterval',
  'statusInterval',
  'restart',
  'register',
  'valve',
];
const RECYCLE_KEYS = [
  'maxRequests',
  'maxRequestsJitter',
  'maxRss',
  'maxHeapUsed',
  'memoryChecks',
  'maxAge',
  'maxAgeJitter',
  'minLifetime',
  'concurrency',
  'drainTimeout',
];
const CONTROL_KEYS = ['port', 'host', 'token', 'metricsTimeout', 'allowUnauthenticated'];
const RESTART_KEYS = ['initialDelay', 'maxDelay', 'jitter', 'intensity', 'period'];

/** `-5` (number), `'abc'` (string): how a received value is shown in messages. */
export function describeValue(value: unknown): string {
  if (typeof value === 'function') return `a function`;
  let shown: string;
  try {
    shown = typeof value === 'string' ? `'${value}'` : (JSON.stringify(value) ?? String(value));
  } catch {
    shown = String(value);
  }
  // Before cutting: a URL cut inside its password would no longer look like one.
  shown = redactText(shown);
  if (shown.length > 60) shown = `${shown.slice(0, 57)}...`;
  const type = value === null ? 'null' : Array.isArray(value) ? 'array' : typeof value;
  return `\`${shown}\` (${type})`;
}

/** A value given for a secret-named option (`password`, `control.token`) is shown by its type only. */
function describeSecretAware(name: string, value: unknown): string {
  if (isSecretKey(name.slice(name.lastIndexOf('.') + 1)) && value !== undefined && value !== null)
    return `\`${REDACTED}\` (${Array.isArray(value) ? 'array' : typeof value})`;
  return describeValue(value);
}

export function invalidOption(name: string, expected: string, value: unknown): StewardError {
  return new StewardError(
    'STEWARD_ERR_INVALID_OPTION',
    `Expected \`${name}\` to be ${expected}, got ${describeSecretAware(name, value)}`,
    {
      details: { option: name, expected },
    },
  );
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let previous = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const current = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, previous + (a[i - 1] === b[j - 1] ? 0 : 1));
      previous = current;
    }
  }
  return row[b.length]!;
}

/** Throws for keys not in `known`, suggesting the closest known key. */
export function rejectUnknownKeys(object: object, known: readonly string[], prefix: string): void {
  for (const key of Object.keys(object)) {
    if (known.includes(key)) continue;
    const closest = [...known].sort(
      (x, y) =>
        editDistance(key.toLowerCase(), x.toLowerCase()) - editDistance(key.toLowerCase(), y.toLowerCase()),
    )[0];
    const hint =
      closest && editDistance(key.toLowerCase(), closest.toLowerCase()) <= 3
        ? ` Did you mean \`${prefix}${closest}\`?`
        : '';
    throw new StewardError('STEWARD_ERR_UNKNOWN_OPTION', `Unknown option \`${prefix}${key}\`.${hint}`, {
      details: { option: `${prefix}${key}`, suggestion: hint ? `${prefix}${closest}` : undefined },
    });
  }
}

export function requireObject(name: string, value: unknown): asserts value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw invalidOption(name, 'an object', value);
}

export function integerOption(
  name: string,
  value: unknown,
  min: number,
  max = Number.MAX_SAFE_INTEGER,
): number {
  if (!Number.isInteger(value) || (value as number) < min || (value as number) > max) {
    const range = max === Number.MAX_SAFE_INTEGER ? `>= ${min}` : `between ${min} and ${max}`;
    throw invalidOption(name, `an integer ${range}`, value);
  }
  return value as number;
}

export function numberOption(name: string, value: unknown, min: number, max: number): number {
  if (typeof value !== 'number' || Number.isNaN(value) || value < min || value > max) {
    throw invalidOption(name, `a number between ${min} and ${max}`, value);
  }
  return value;
}

/** Milliseconds as a number or a `'30s'`-style string; `allowInfinity` for "forever". */
export function durationOption(name: string, value: unknown, min = 0, allowInfinity = false): number {
  if (allowInfinity && value === Number.POSITIVE_INFINITY) return value;
  const ms = parseDuration(value);
  if (ms === undefined || !Number.isFinite(ms) || !Number.isInteger(ms) || ms < min) {
    throw invalidOption(name, `a duration >= ${min} ms (integer ms or a string like '30s', '6h')`, value);
  }
  return ms;
}

export function bytesOption(name: string, value: unknown): number {
  const bytes = parseBytes(value);
  if (bytes === undefined || !Number.isSafeInteger(bytes) || bytes < 1) {
    throw invalidOption(name, `a size >= 1 byte (integer bytes or a string like '512MB', '1GiB')`, value);
  }
  return bytes;
}

function functionOption<T>(name: string, value: unknown): T {
  if (typeof value !== 'function') throw invalidOption(name, 'a function', value);
  return value as T;
}

/** Picks one of two alias keys (steward name, throng name), refusing both at once. */
function alias(raw: Record<string, unknown>, name: string, throngName: string): unknown {
  if (raw[name] !== undefined && raw[throngName] !== undefined) {
    throw new StewardError(
      'STEWARD_ERR_OPTION_CONFLICT',
      `Give \`${name}\` or its throng alias \`${throngName}\`, not both`,
      {
        details: { options: [name, throngName] },
      },
    );
  }
  return raw[name] ?? raw[throngName];
}

export function moduleLocation(name: string, value: unknown): URL {
  if (value instanceof URL) {
    if (value.protocol !== 'file:') throw invalidOption(name, 'a file: URL or an absolute path', value.href);
    return value;
  }
  if (typeof value === 'string' && value.startsWith('file:')) return new URL(value);
  if (typeof value === 'string' && isAbsolute(value)) return pathToFileURL(value);
  throw invalidOption(
    name,
    'a file: URL or an absolute path (ES module: new URL("./services.js", import.meta.url); CommonJS: path.join(__dirname, "services.js"))',
    value,
  );
}

function resolveRecycle(raw: unknown): ResolvedOptions['recycle'] {
  const d = defaults.recycle;
  if (raw === undefined)
    return { ...d, maxRequests: undefined, maxRss: undefined, maxHeapUsed: undefined, maxAge: undefined };
  requireObject('recycle', raw);
  rejectUnknownKeys(raw, RECYCLE_KEYS, 'recycle.');
  const optional = <T>(key: string, read: (name: string, value: unknown) => T): T | undefined =>
    raw[key] === undefined ? undefined : read(`recycle.${key}`, raw[key]);
  return {
    maxRequests: optional('maxRequests', (n, v) => integerOption(n, v, 1)),
    maxRequestsJitter: optional('maxRequestsJitter', (n, v) => integerOption(n, v, 0)) ?? d.maxRequestsJitter,
    maxRss: optional('maxRss', bytesOption),
    maxHeapUsed: optional('maxHeapUsed', bytesOption),
    memoryChecks: optional('memoryChecks', (n, v) => integerOption(n, v, 1, 1000)) ?? d.memoryChecks,
    maxAge: optional('maxAge', (n, v) => durationOption(n, v, 1)),
    maxAgeJitter: optional('maxAgeJitter', (n, v) => durationOption(n, v, 0)) ?? d.maxAgeJitter,
    minLifetime: optional('minLifetime', (n, v) => durationOption(n, v, 0)) ?? d.minLifetime,
    concurrency: optional('concurrency', (n, v) => integerOption(n, v, 1, 1024)) ?? d.concurrency,
    drainTimeout: optional('drainTimeout', (n, v) => durationOption(n, v, 1)) ?? d.drainTimeout,
  };
}

/** `control` of `steward()`, also of `runServices()` and `cluster-steward services`. */
export function resolveControl(raw: unknown): ResolvedOptions['control'] {
  if (raw === undefined || raw === false) return undefined;
  requireObject('control', raw);
  rejectUnknownKeys(raw, CONTROL_KEYS, 'control.');
  const port = integerOption('control.port', raw.port, 0, 65_535);
  const host = raw.host ?? defaults.control.host;
  if (typeof host !== 'string' || host.length === 0)
    throw invalidOption('control.host', 'a non-empty host name or address', host);
  const token = raw.token;
  if (token !== undefined && (typeof token !== 'string' || token.length < 16)) {
    throw invalidOption(
      'control.token',
      'a string of at least 16 characters',
      token === undefined ? token : typeof token === 'string' ? `${token.length} characters` : token,
    );
  }
  const metricsTimeout =
    raw.metricsTimeout === undefined
      ? defaults.control.metricsTimeout
      : durationOption('control.metricsTimeout', raw.metricsTimeout, 10);
  const allowUnauthenticated = raw.allowUnauthenticated ?? false;
  if (typeof allowUnauthenticated !== 'boolean')
    throw invalidOption('control.allowUnauthenticated', 'true or false', allowUnauthenticated);
  if (token === undefined && !allowUnauthenticated && !isLoopbackHost(host)) {
    throw new StewardError(
      'STEWARD_ERR_CONTROL_UNPROTECTED',
      `\`control.host\` is '${redactText(host)}', which is not a loopback address, and no \`control.token\` is set: ` +
        'anyone who can reach the port could read /status and /metrics. Set `control.token` ' +
        '(at least 16 characters), or set `control.allowUnauthenticated: true` (CLI ' +
        '`--control-allow-unauthenticated`) if a network policy ' +
        'already admits only the scraper.',
      { details: { option: 'control.allowUnauthenticated', host: redactText(host) } },
    );
  }
  return { port, host, token, metricsTimeout };
}

function resolveRestart(raw: unknown): ResolvedOptions['restart'] {
  const d = defaults.restart;
  if (raw === undefined) return { ...d };
  requireObject('restart', raw);
  rejectUnknownKeys(raw, RESTART_KEYS, 'restart.');
  const restart = {
    initialDelay:
      raw.initialDelay === undefined
        ? d.initialDelay
        : durationOption('restart.initialDelay', raw.initialDelay, 0),
    maxDelay: raw.maxDelay === undefined ? d.maxDelay : durationOption('restart.maxDelay', raw.maxDelay, 0),
    jitter: raw.jitter === undefined ? d.jitter : numberOption('restart.jitter', raw.jitter, 0, 1),
    intensity:
      raw.intensity === undefined ? d.intensity : integerOption('restart.intensity', raw.intensity, 1),
    period: raw.period === undefined ? d.period : durationOption('restart.period', raw.period, 1),
  };
  if (restart.maxDelay < restart.initialDelay) {
    throw new StewardError(
      'STEWARD_ERR_OPTION_CONFLICT',
      `Expected \`restart.maxDelay\` (${restart.maxDelay}) to be >= \`restart.initialDelay\` (${restart.initialDelay})`,
    );
  }
  return restart;
}

const SIGNAL_NAME = /^SIG[A-Z0-9]+$/;

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

/**
 * `process.env.WEB_CONCURRENCY` is a string: a decimal integer string counts as that integer, as throng
 * takes it. Other strings stay as they are, so the error shows what was received.
 */
function countFrom(value: unknown): unknown {
  return typeof value === 'string' && /^\s*\d+\s*$/.test(value) ? Number(value) : value;
}

/** The one place where options are checked: every error names the option, the range and the value. */
export function resolveOptions(input: unknown, legacyStart?: unknown): ResolvedOptions {
  input = throngCallForm(input, legacyStart);
  requireObject('options', input);
  const raw = input;
  rejectUnknownKeys(raw, TOP_KEYS, '');

  const workersRaw = alias(raw, 'workers', 'count');
  const workers =
    workersRaw === undefined
      ? availableParallelism()
      : integerOption(raw.workers === undefined ? 'count' : 'workers', countFrom(workersRaw), 1, 1024);
  const worker = alias(raw, 'worker', 'start');
  const primary = alias(raw, 'primary', 'master');
  const placement = raw.placement ?? defaults.placement;
  if (placement !== 'sibling' && placement !== 'primary')
    throw invalidOption('placement', `'sibling' or 'primary'`, placement);
  if (raw.placement !== undefined && raw.services === undefined) {
    throw new StewardError(
      'STEWARD_ERR_OPTION_CONFLICT',
      '`placement` was given without `services`: there is nothing to place',
    );
  }
  const signals = raw.signals ?? defaults.signals;
  if (
    !Array.isArray(signals) ||
    signals.length === 0 ||
    !signals.every((s) => typeof s === 'string' && SIGNAL_NAME.test(s))
  ) {
    throw invalidOption('signals', `a non-empty array of signal names like 'SIGTERM'`, signals);
  }
  if (signals.includes('SIGHUP') || signals.includes('SIGUSR2')) {
    throw new StewardError(
      'STEWARD_ERR_OPTION_CONFLICT',
      '`signals` cannot include SIGHUP or SIGUSR2: they restart workers and services',
    );
  }
  const register = raw.register;
  if (
    register !== undefined &&
    (typeof register !== 'object' ||
      register === null ||
      typeof (register as Registry).getMetricsAsJSON !== 'function')
  ) {
    throw invalidOption('register', 'a prom-client Registry', register);
  }
  const logger = raw.logger;
  if (logger !== undefined && (typeof logger !== 'object' || logger === null))
    throw invalidOption('logger', 'a pino logger or pino options object', logger);

  const resolved: ResolvedOptions = {
    workers,
    worker:
      worker === undefined
        ? undefined
        : functionOption<WorkerStart>(raw.worker === undefined ? 'start' : 'worker', worker),
    primary:
      primary === undefined
        ? undefined
        : functionOption(raw.primary === undefined ? 'master' : 'primary', primary),
    services: raw.services === undefined ? undefined : moduleLocation('services', raw.services),
    placement,
    recycle: resolveRecycle(raw.recycle),
    control: resolveControl(raw.control),
    logger: logger as LoggerOption,
    grace: raw.grace === undefined ? defaults.grace : durationOption('grace', raw.grace, 0),
    lifetime:
      raw.lifetime === undefined ? defaults.lifetime : durationOption('lifetime', raw.lifetime, 0, true),
    signals: signals as NodeJS.Signals[],
    bootTimeout:
      raw.bootTimeout === undefined
        ? defaults.bootTimeout
        : durationOption('bootTimeout', raw.bootTimeout, 1),
    heartbeatInterval:
      raw.heartbeatInterval === undefined
        ? defaults.heartbeatInterval
        : integerOption('heartbeatInterval', raw.heartbeatInterval, 10, 60_000),
    statusInterval:
      raw.statusInterval === undefined
        ? defaults.statusInterval
        : integerOption('statusInterval', raw.statusInterval, 10, 300_000),
    restart: resolveRestart(raw.restart),
    register: register as Registry | undefined,
    valve: resolveValve(raw.valve),
  };
  if (resolved.worker === undefined && resolved.services === undefined) {
    throw new StewardError(
      'STEWARD_ERR_OPTION_CONFLICT',
      'Give `worker` (the HTTP start function), `services`, or both',
    );
  }
  const { maxRequests, maxRequestsJitter } = resolved.recycle;
  if (maxRequests === undefined && maxRequestsJitter > 0) {
    throw new StewardError(
      'STEWARD_ERR_OPTION_CONFLICT',
      '`recycle.maxRequestsJitter` needs `recycle.maxRequests`',
    );
  }
  if (resolved.recycle.maxAge === undefined && resolved.recycle.maxAgeJitter > 0) {
    throw new StewardError('STEWARD_ERR_OPTION_CONFLICT', '`recycle.maxAgeJitter` needs `recycle.maxAge`');
  }
  return resolved;
}
