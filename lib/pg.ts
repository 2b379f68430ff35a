// `cluster-steward/pg`: the PostgreSQL event queue, LISTEN/NOTIFY listener and singleton lock (needs `pg`).
export {
  acquireSingleton,
  type SingletonLease,
  type SingletonLockOptions,
  singletonLockKey,
} from './listeners/pg/singleton-lock.js';
