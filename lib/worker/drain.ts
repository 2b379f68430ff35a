import type { Logger } from 'pino';
import type { IpcChannel } from '../common/ipc.js';
import type { RequestTracker } from './request-tracker.js';

/**
 * Retires this worker: drains the tracked servers (see `RequestTracker#drain`), reports the final
 * figures and exits 0; exits 1 when the drain is not over within `timeout` ms, cutting whatever is
 * still in flight (the primary also kills a worker whose event loop is too blocked to do this).
 */
export async function drainAndExit(
  tracker: RequestTracker,
  timeout: number,
  logger: Logger,
  primary: IpcChannel,
  /** Last words before exiting, once drained (the final metrics report); bounded by its own timeout. */
  beforeExit?: () => Promise<void>,
): Promise<void> {
  const started = Date.now();
  logger.info(
    { inFlight: tracker.inFlight, connections: tracker.connections, timeout },
    'worker:drain:start',
  );
  const deadline = setTimeout(() => {
    logger.warn(
      { inFlight: tracker.inFlight, connections: tracker.connections, timeout },
      'worker:drain:timeout',
    );
    process.exit(1);
  }, timeout);
  deadline.unref();
  await tracker.drain();
  const memory = process.memoryUsage();
  // The last heartbeat, so the primary logs the exact request count of the retired worker.
  primary.send('worker:heartbeat', {
    requests: tracker.requests,
    inFlight: 0,
    rss: memory.rss,
    heapUsed: memory.heapUsed,
  });
  logger.info({ drainMs: Date.now() - started, requests: tracker.requests }, 'worker:drain:done');
  await beforeExit?.();
  primary.close('worker exiting');
  setImmediate(() => process.exit(0));
}
