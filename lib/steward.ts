import cluster from 'node:cluster';
import { createLogger } from './common/logger.js';
import { resolveOptions, type StewardOptions } from './options.js';
import { runPrimary, type Supervisor } from './primary/supervisor.js';
import { runWorker } from './worker/agent.js';

/**
 * Wraps a clustered start. Call it from the application's entry module: in the primary it validates the
 * options (throwing a coded `StewardError` before anything is forked), forks and supervises the workers
 * and the services; in each HTTP worker (the same module, re-run by `node:cluster`) it runs `worker`.
 *
 * Resolves with the `Supervisor` in the primary and with nothing in a worker.
 */
export function steward(input: StewardOptions): Promise<Supervisor | undefined> {
  const options = resolveOptions(input);
  if (cluster.isWorker) return runWorker(options).then(() => undefined);
  const logger = createLogger(options.logger, { role: 'primary' });
  return runPrimary(options, logger);
}
