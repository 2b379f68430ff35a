import cluster from 'node:cluster';
import type { WorkerStart } from './common/worker-context.js';
import { resolveOptions, type StewardOptions } from './options.js';
import type { Supervisor } from './primary/supervisor.js';

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
  const options = resolveOptions(input === undefined && start !== undefined ? start : input, start);
  // Each role loads only its own code: a worker (forked again at every recycle) never parses the
  // supervisor, the recycler, the control server or the metrics aggregator.
  if (cluster.isWorker)
    return import('./worker/agent.js').then(({ runWorker }) => runWorker(options)).then(() => undefined);
  return Promise.all([import('./common/logger.js'), import('./primary/supervisor.js')]).then(
    ([{ createLogger }, { runPrimary }]) =>
      runPrimary(options, createLogger(options.logger, { role: 'primary' })),
  );
}
