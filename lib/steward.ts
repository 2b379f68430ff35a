import cluster from 'node:cluster';
import { createRequire } from 'node:module';
import type { WorkerStart } from './common/worker-context.js';
import type { ResolvedOptions, StewardOptions } from './options.js';
import type { Supervisor } from './primary/supervisor.js';
import {
  callValues,
  readWorkerSettings,
  type WorkerOptions,
  workerOptionsOf,
} from './worker/worker-settings.js';

/**
 * Wraps a clustered start. Call it from the application's entry module: in the primary it validates the
 * options (throwing a coded `StewardError` before anything is forked), forks and supervises the workers
 * and the services; in each HTTP worker (the same module, re-run by `node:cluster`) it runs `worker`.
 *
 * Resolves with the `Supervisor` in the primary and with nothing in a worker.
 *
 * throng's call forms work as they are: `steward(start)`, `steward(4, start)` and
 * `steward(process.env.WEB_CONCURRENCY, start)`.
 */
export function steward(input: StewardOptions | WorkerStart): Promise<Supervisor | undefined>;
export function steward(
  workers: number | string | undefined,
  start: WorkerStart,
): Promise<Supervisor | undefined>;
export function steward(
  input: StewardOptions | WorkerStart | number | string | undefined,
  start?: WorkerStart,
): Promise<Supervisor | undefined> {
  const given = input === undefined && start !== undefined ? start : input;
  // Each role loads only its own code: a worker (forked again at every recycle) never parses the
  // supervisor, the recycler, the control server, the metrics aggregator or the option specs.
  if (cluster.isWorker) {
    const options = workerOptions(given, start);
    return import('./worker/agent.js').then(({ runWorker }) => runWorker(options)).then(() => undefined);
  }
  const options = resolveOptions(given, start);
  return Promise.all([import('./common/logger.js'), import('./primary/supervisor.js')]).then(
    ([{ createLogger }, { runPrimary }]) =>
      runPrimary(options, createLogger(options.logger, { role: 'primary' })),
  );
}

/** The settings the primary resolved (see `worker-settings.ts`) with this worker's own call's values. */
function workerOptions(given: unknown, start: unknown): WorkerOptions {
  const settings = readWorkerSettings();
  // Forked by other code: no steward primary to take the agent's lines.
  if (settings === undefined) return { ...workerOptionsOf(resolveOptions(given, start)), relayLogs: false };
  return { ...settings, ...callValues(given, start) };
}

const require = createRequire(import.meta.url);

/**
 * The option specs and their checks, loaded when first needed rather than with this module, which every
 * worker imports. Through `require()` (of an ES module: Node 20.19+ and 22.12+, the versions this package
 * supports), so the primary still checks the options synchronously: a bad one throws at the call.
 */
function resolveOptions(given: unknown, start: unknown): ResolvedOptions {
  return (require('./options.js') as typeof import('./options.js')).resolveOptions(given, start);
}
