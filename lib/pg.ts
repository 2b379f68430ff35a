// `cluster-steward/pg`: the PostgreSQL event queue, LISTEN/NOTIFY listener and singleton lock (needs `pg`).
export { type EnqueueOptions, enqueue, type NewEvent } from './listeners/pg/enqueue.js';
export { type PgEventQueueOptions, pgEventQueue } from './listeners/pg/event-queue.js';
export { assertFencingToken } from './listeners/pg/fencing.js';
export { type QueueNames, queueNames } from './listeners/pg/identifiers.js';
export { migrate } from './listeners/pg/migrate.js';
export type { Notification } from './listeners/pg/notify-connection.js';
export {
  type NotifyHandlerEvent,
  type PgNotifyListenerOptions,
  pgNotifyListener,
} from './listeners/pg/notify-listener.js';
export type { EventHandler, QueueEvent } from './listeners/pg/queue-event.js';
export {
  acquireSingleton,
  type SessionBounds,
  type SingletonLease,
  type SingletonLockOptions,
  sessionBounds,
  singletonLockKey,
} from './listeners/pg/singleton-lock.js';
export type { Queryable } from './listeners/pg/sql/types.js';
export type { EpochTable, FencingToken } from './services/lease.js';
