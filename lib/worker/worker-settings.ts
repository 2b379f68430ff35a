import type { Registry } from 'prom-client';
import { levelThresholdOf } from '../common/log-level.js';
import type { LoggerOption } from '../common/logger.js';
import type { WorkerStart } from '../common/worker-context.js';
import type { ResolvedOptions } from '../options.js';

/**
 * The options of `steward()` are resolved and checked once, in the primary. Each HTTP worker re-runs the
 * application's entry and calls `steward()` again; resolving there would load the option specs and their
 * checks (nine modules, about 10 ms of CPU at every worker's start, so in every recycle) to find what the
 * primary already knows. So the primary hands each worker the resolved settings it needs in its
 * environment, and the worker takes from its own call only what cannot cross a process boundary: the start
 * function, a logger instance, a registry.
 */
export const WORKER_SETTINGS_ENV = 'STEWARD_WORKER_SETTINGS';

/** What an HTTP worker's agent uses of the resolved options that can be sent as JSON. */
export interface WorkerSettings {
  grace: number;
  heartbeatInterval: number;
  statusInterval: number;
  signals: NodeJS.Signals[];
  /** A services module is configured: status pushes are expected and the valve reads the load signal. */
  services: boolean;
  /** The primary writes the agent's own lines (see `worker-log.ts`): its logger was built from options. */
  relayLogs: boolean;
}

/** What the agent runs with: the settings and the values only the worker's own call can give. */
export interface WorkerOptions extends WorkerSettings {
  worker: WorkerStart | undefined;
  logger: LoggerOption;
  register: Registry | undefined;
}

/** The worker's part of the resolved options (in the primary, or in a worker that resolved them itself). */
export function workerOptionsOf(options: ResolvedOptions): WorkerOptions {
  return {
    ...workerSettingsOf(options),
    worker: options.worker,
    logger: options.logger,
    register: options.register,
  };
}

function workerSettingsOf(options: ResolvedOptions): WorkerSettings {
  const { grace, heartbeatInterval, statusInterval, signals } = options;
  return {
    grace,
    heartbeatInterval,
    statusInterval,
    signals,
    services: options.services !== undefined,
    relayLogs: levelThresholdOf(options.logger) !== undefined,
  };
}

/** The environment entry for every worker the primary forks. */
export function workerSettingsEnv(options: ResolvedOptions): Record<string, string> {
  return { [WORKER_SETTINGS_ENV]: JSON.stringify(workerSettingsOf(options)) };
}

/**
 * In a worker: the settings its primary handed over, or undefined when there are none to trust (a worker
 * forked by other code, a value damaged on the way), and the worker must resolve its options itself.
 */
export function readWorkerSettings(env: NodeJS.ProcessEnv = process.env): WorkerSettings | undefined {
  const raw = env[WORKER_SETTINGS_ENV];
  if (raw === undefined) return undefined;
  try {
    const value = JSON.parse(raw) as Partial<WorkerSettings>;
    const numbers = [value.grace, value.heartbeatInterval, value.statusInterval];
    if (!numbers.every((n) => typeof n === 'number' && Number.isFinite(n) && n >= 0)) return undefined;
    if (!Array.isArray(value.signals) || !value.signals.every((s) => typeof s === 'string')) return undefined;
    if (typeof value.services !== 'boolean' || typeof value.relayLogs !== 'boolean') return undefined;
    return value as WorkerSettings;
  } catch {
    return undefined;
  }
}

/**
 * The start function, logger and registry of a worker's own `steward()` call, in any of its forms:
 * `steward(start)`, `steward(count, start)`, or the options object with `worker` or throng's `start`. The
 * primary checked the same call (same entry module) before it forked anything.
 */
export function callValues(
  input: unknown,
  legacyStart: unknown,
): Pick<WorkerOptions, 'worker' | 'logger' | 'register'> {
  if (typeof input === 'function')
    return { worker: input as WorkerStart, logger: undefined, register: undefined };
  if (typeof legacyStart === 'function' && (typeof input === 'number' || typeof input === 'string'))
    return { worker: legacyStart as WorkerStart, logger: undefined, register: undefined };
  const given = (typeof input === 'object' && input !== null ? input : {}) as {
    worker?: WorkerStart;
    start?: WorkerStart;
    logger?: LoggerOption;
    register?: Registry;
  };
  return { worker: given.worker ?? given.start, logger: given.logger, register: given.register };
}
