import type { IpcChannel } from '../common/ipc.js';
import type { RequestTracker } from './request-tracker.js';
import type { AgentLogger } from './worker-log.js';

/**
 * Retires this worker: drains the tracked servers (see `RequestTracker#drain`), reports the final
 * figures and exits 0. At `timeout` ms: with nothing in flight, the connections still open are idle
 * keep-alive ones (a server whose keep-alive timeout is longer than the drain), so they are closed and
 * the drain counts as done; with requests or upgraded connections (WebSocket...) still open, it exits 1,
 * cutting them (the primary also kills a worker whose event loop is too blocked to get here).
 */
export async function drainAndExit(
  tracker: RequestTracker,
  timeout: number,
  logger: AgentLogger,
  primary: IpcChannel,
  /** Last words once drained (the final metrics report), given the ms left before `timeout`. */
  beforeExit?: (remainingMs: number) => Promise<void>,
): Promise<void> {
  const started = Date.now();
  logger.info(
    { inFlight: tracker.inFlight, connections: tracker.connections, timeout },
    'worker:drain:start',
  );
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<'deadline'>((resolve) => {
    timer = setTimeout(() => resolve('deadline'), timeout);
  });
  const outcome = await Promise.race([tracker.drain().then(() => 'drained' as const), deadline]);
  clearTimeout(timer);
  if (outcome === 'deadline') {
    if (tracker.inFlight > 0 || tracker.upgradedConnections > 0) {
      const { inFlight, connections, upgradedConnections } = tracker;
      logger.warn({ inFlight, connections, upgradedConnections, timeout }, 'worker:drain:timeout');
      await logger.flushed();
      process.exit(1);
    }
    logger.info({ idleClosed: tracker.closeIdleConnections(), timeout }, 'worker:drain:idle-closed');
  }
  const memory = process.memoryUsage();
  // The last heartbeat, so the primary logs the exact request count of the retired worker.
  primary.send('worker:heartbeat', {
    requests: tracker.requests,
    inFlight: 0,
    rss: memory.rss,
    heapUsed: memory.heapUsed,
  });
  logger.info({ drainMs: Date.now() - started, requests: tracker.requests }, 'worker:drain:done');
  // Within the deadline (with a margin): a slow primary never turns a clean drain into a drain timeout.
  await beforeExit?.(started + timeout - Date.now() - 100);
  primary.close('worker exiting');
  setImmediate(() => process.exit(0));
}
