/**
 * `cluster-steward/throng`: keep starting the application with the `throng` package and get the services
 * placement, request counting, drain and recycling of cluster-steward. throng still forks and re-forks the
 * workers; see `docs/migrating-from-throng.md` for what that costs compared with `steward()`.
 *
 * ```js
 * import throng from 'throng';
 * import { forThrong } from 'cluster-steward/throng';
 * throng(forThrong({ count: 4, worker: start, services: new URL('./services.js', import.meta.url) }));
 * ```
 */

import type { WorkerStart } from './common/worker-context.js';
import { StewardError } from './errors.js';
import { resolveOptions, type StewardOptions } from './options.js';
import { startThrongPrimary } from './throng/throng-primary.js';
import { runWorker } from './worker/agent.js';
import { workerOptionsOf } from './worker/worker-settings.js';

export type { ThrongPrimary } from './throng/throng-primary.js';

/** The options of `forThrong`: the same as `steward()`'s, throng's names included. */
export type ForThrongOptions = StewardOptions;

/** What `throng(options)` reads (throng 5): the start functions and its four settings. */
export interface ThrongOptions {
  /** Run by throng in the primary before it forks: starts the services, then watches the workers. */
  master: () => Promise<void>;
  /** Run by throng in each worker: the request-counting agent around the application's start function. */
  worker: (id: number, disconnect: () => void) => Promise<void>;
  count: number;
  lifetime: number;
  grace: number;
  signals: NodeJS.Signals[];
}

/**
 * Options for `throng(...)` that add cluster-steward to a throng application. Validates everything at
 * once, in every process, with the same coded errors as `steward()`.
 *
 * `grace` defaults to 30 s (throng's own default is 5 s): it is also the drain deadline of the workers at
 * shutdown, and a drain cut short fails requests.
 */
export function forThrong(input: ForThrongOptions | WorkerStart): ThrongOptions;
export function forThrong(count: number | string | undefined, start: WorkerStart): ThrongOptions;
export function forThrong(
  input: ForThrongOptions | WorkerStart | number | string | undefined,
  start?: WorkerStart,
): ThrongOptions {
  const options = resolveOptions(input === undefined && start !== undefined ? start : input, start);
  if (options.worker === undefined) {
    throw new StewardError(
      'STEWARD_ERR_OPTION_CONFLICT',
      'forThrong() needs `worker` (or `start`): throng refuses to start without a start function; run services alone with runServices()',
    );
  }
  return {
    master: () => startThrongPrimary(options).then(() => undefined),
    // throng calls worker(id, disconnect); the agent calls the application's start with its own
    // `disconnect`, which asks the primary for a drain instead of cutting the IPC channel at once.
    worker: () => runWorker(workerOptionsOf(options)),
    count: options.workers,
    lifetime: options.lifetime,
    grace: options.grace,
    signals: options.signals,
  };
}
