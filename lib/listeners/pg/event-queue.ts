import type { Service } from '../../services/types.js';
import { type PgEventQueueOptions, resolveEventQueueOptions } from './event-queue-options.js';
import { QueueConsumer } from './queue-consumer.js';

export { type PgEventQueueOptions, resolveEventQueueOptions } from './event-queue-options.js';

/**
 * A PostgreSQL event queue consumer as a service: any number of them, on any number of machines, may
 * consume the same table. See docs/postgres.md for the guarantees.
 */
export function pgEventQueue(input: PgEventQueueOptions): Service {
  const { name, service, ...settings } = resolveEventQueueOptions(input);
  return {
    ...service,
    name,
    run: (ctx) => new QueueConsumer(settings, ctx).run(),
  };
}
