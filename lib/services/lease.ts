import type { Logger } from 'pino';

/**
 * What a singleton holder may write with: the epoch of its acquisition of `key`. Every acquisition
 * increments the epoch, so a write that checks its token inside its transaction is refused once a newer
 * holder exists, however late the old holder learned that it lost the lock.
 */
export interface FencingToken {
  /** The singleton's lock name. */
  readonly key: string;
  /** Incremented on every acquisition of `key`; a bigint kept as a decimal string. */
  readonly epoch: string;
  /** Schema of the epoch table. */
  readonly schema: string;
  /** Name of the epoch table. */
  readonly table: string;
}

/** Where the epochs live: a plain schema and table name, checked like every other identifier. */
export interface EpochTable {
  schema: string;
  table: string;
}

export const defaultEpochTable: EpochTable = { schema: 'public', table: 'steward_singleton_epochs' };

/** Leadership held by this host for a singleton service. */
export interface Lease {
  /** Aborts once leadership may no longer be held; the service's run is stopped with it. */
  readonly lost: AbortSignal;
  /** The epoch of this acquisition, or null when the strategy hands out no token. */
  readonly fencing: FencingToken | null;
  /** Gives leadership up; safe to call more than once and after `lost`. */
  release(): Promise<void>;
}

/** The resolved `singleton` settings of a service, as a lease strategy receives them. */
export interface SingletonSettings {
  /** PostgreSQL connection string of the dedicated lock connection. */
  connectionString: string;
  /** Lock name. */
  key: string;
  /** Renewal period while held, in ms. */
  checkInterval: number;
  /** Where each acquisition increments the epoch; `false` hands out no fencing token. */
  epochTable: EpochTable | false;
}

/**
 * How a host becomes the one that runs a singleton: waits until leadership is won (resolves the lease) or
 * `signal` aborts (resolves null); rejects when leadership cannot be asked for now (the runner retries).
 * The service runner knows only this seam; the PostgreSQL advisory lock is injected by the process that
 * composes the host, so the generic runner never loads a database driver.
 */
export type LeaseStrategy = (
  singleton: SingletonSettings,
  logger: Logger,
  signal: AbortSignal,
) => Promise<Lease | null>;
