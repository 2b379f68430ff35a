import type { LeaseStrategy } from '../../services/lease.js';

/**
 * Leadership through a PostgreSQL session advisory lock (see `singleton-lock.ts`), the lease strategy of
 * every `singleton` service. `pg` is loaded on the first acquisition, so processes without singletons
 * never load it.
 */
export const advisoryLockLeases: LeaseStrategy = async (singleton, logger, signal) => {
  const { acquireSingleton } = await import('./singleton-lock.js');
  return acquireSingleton({ ...singleton, logger }, signal);
};
