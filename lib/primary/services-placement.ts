import type { Logger } from 'pino';
import type { EventLoopWatchdog } from '../common/event-loop-watchdog.js';
import type { ResolvedOptions } from '../options.js';
import type { ServicesSupervisor } from './services-supervisor.js';

/**
 * The services host that `placement` asks for. Only that placement's code is loaded: the in-process
 * host (and the listeners' code behind it) never enters a primary whose services run in a sibling.
 */
export async function createServicesSupervisor(
  options: ResolvedOptions,
  logger: Logger,
  eventLoop?: EventLoopWatchdog,
): Promise<ServicesSupervisor> {
  if (options.placement === 'primary') {
    const { InProcessServices } = await import('./services-in-process.js');
    return new InProcessServices(options, logger, eventLoop);
  }
  const { SiblingServices } = await import('./services-sibling.js');
  return new SiblingServices(options, logger);
}
