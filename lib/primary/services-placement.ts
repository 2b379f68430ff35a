import type { Logger } from 'pino';
import type { EventLoopWatchdog } from '../common/event-loop-watchdog.js';
import type { ResolvedOptions } from '../options.js';
import { InProcessServices } from './services-in-process.js';
import { SiblingServices } from './services-sibling.js';
import type { ServicesSupervisor } from './services-supervisor.js';

/** The services host that `placement` asks for. */
export function createServicesSupervisor(
  options: ResolvedOptions,
  logger: Logger,
  eventLoop?: EventLoopWatchdog,
): ServicesSupervisor {
  return options.placement === 'primary'
    ? new InProcessServices(options, logger, eventLoop)
    : new SiblingServices(options, logger);
}
