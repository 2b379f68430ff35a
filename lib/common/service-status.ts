import type { SerializedError } from '../errors.js';

/**
 * Lifecycle of one service under the service host.
 * starting → running → (stopping → stopped) | (backoff → starting) ; standby while a singleton waits for its lock;
 * failed once restarts exceed the intensity limit (the host keeps retrying at the maximum delay).
 */
export type ServiceState = 'starting' | 'running' | 'backoff' | 'standby' | 'stopping' | 'stopped' | 'failed';

/** Status of one service, as published by its host. */
export interface ServiceStatus {
  name: string;
  state: ServiceState;
  /** Epoch ms of the last state change. */
  since: number;
  restarts: number;
  lastError: SerializedError | null;
  processed: number;
  failed: number;
  deadLettered: number;
  duplicates: number;
  /** Handler runs ended by their `handlerTimeout` (counted in `failed` or `deadLettered` too). */
  handlerTimeouts: number;
  /** Epoch ms of the last recorded event, or null. */
  lastEventAt: number | null;
  /** Lag of the last event in ms, or null when unknown. */
  lagMs: number | null;
  queueDepth: number | null;
  oldestAgeMs: number | null;
  connected: boolean | null;
  /** For singletons: whether this host holds the lock; null for ordinary services. */
  leader: boolean | null;
  /** Why the service cannot make progress right now, or null (see `ServiceContext.setProblem`). */
  problem: string | null;
}

/** Which process hosts the services: the primary, the forked sibling, or `runServices()` alone. */
export type ServicesHostRole = 'primary' | 'sibling' | 'standalone';

/** Everything a service host publishes at once. */
export interface ServicesSnapshot {
  role: ServicesHostRole;
  pid: number;
  /** Epoch ms when the snapshot was taken. */
  at: number;
  services: ServiceStatus[];
  /**
   * Set by the primary when the host stopped reporting (a stopped or blocked sibling): what it last said
   * may no longer be true, so health reports its services as unable to make progress. Absent otherwise.
   */
  stale?: { silentMs: number };
}
