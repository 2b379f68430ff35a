import type { Logger } from 'pino';
import type { FencingToken } from './lease.js';

export type {
  ServiceState,
  ServiceStatus,
  ServicesHostRole,
  ServicesSnapshot,
} from '../common/service-status.js';

/** Outcome of one event handled by a listener, as counted in status and metrics. */
export type EventOutcome = 'processed' | 'failed' | 'dead_lettered' | 'duplicate';

/** One handled event, as passed to `ServiceContext.recordEvent()`. */
export interface EventRecord {
  outcome: EventOutcome;
  /** Handler wall time in milliseconds. */
  durationMs?: number;
  /** Time from the event's creation (enqueue, broker timestamp) to the handler's start, in milliseconds. */
  lagMs?: number;
  /** The handler did not settle within its `handlerTimeout`: the event failed and its slot was freed. */
  timedOut?: boolean;
}

/** What a running service gets from its host. */
export interface ServiceContext {
  readonly name: string;
  /** Aborts when the service must stop (shutdown, restart, lost singleton lock). */
  readonly signal: AbortSignal;
  /** A pino child logger bound with `service`. */
  readonly logger: Logger;
  /** Marks the service `running` (connected, consuming). Until then it is `starting`. */
  ready(): void;
  /** Marks the service `standby` (waiting, e.g. for a singleton lock); `ready()` leaves it. */
  standby(reason?: string): void;
  /** Feeds the stall watchdog: call whenever work moves forward (an event handled, a poll completed). */
  progress(): void;
  /** Counts one event in the status snapshot and in the `steward_events_total` / handler metrics. */
  recordEvent(event: EventRecord): void;
  /** Reports the backlog where the source knows it; `oldestAgeMs` feeds the lag gauge. */
  setQueueDepth(depth: number, oldestAgeMs?: number): void;
  /** Reports whether the source connection is up; while connected the stall watchdog is armed. */
  setConnected(connected: boolean): void;
  /**
   * Reports why the service cannot make progress right now (a reconnect loop, stuck handlers, a source
   * that refuses it), or `null` once it can again. While set, health reports the service as unhealthy.
   */
  setProblem(problem: string | null): void;
  /**
   * For a singleton: the epoch of this run's lock acquisition. Pass it to `assertFencingToken(db, token)`
   * (from `cluster-steward/pg`) inside a transaction so the database refuses the write once a newer
   * holder exists. Null for ordinary services and with `singleton.epochTable: false`.
   */
  readonly fencing: FencingToken | null;
}

/** How the service host restarts a crashed service: jittered exponential backoff, an intensity limit. */
export interface RestartOptions {
  /** First delay before restarting a crashed service, in ms. @default 100 */
  initialDelay?: number;
  /** Ceiling of the exponential backoff, in ms. @default 30000 */
  maxDelay?: number;
  /** Random spread added to each delay, as a fraction of it (0..1). @default 0.2 */
  jitter?: number;
  /** Crashes allowed within `period` before the state becomes `failed`. @default 5 */
  intensity?: number;
  /** Window for `intensity`, in ms. @default 60000 */
  period?: number;
}

/** Options shared by every service definition. */
export interface ServiceOptions {
  restart?: RestartOptions;
  /**
   * Restart the service when it reports no `progress()` for this long (ms) while connected or while
   * its queue depth is above zero. 0 disables the watchdog. @default 0
   */
  stallTimeout?: number;
  /** How long `run` may take to settle after its signal aborts before it is abandoned, in ms. @default 10000 */
  stopTimeout?: number;
  /**
   * Run only where a PostgreSQL session advisory lock is held (one instance across all hosts);
   * elsewhere the service waits in `standby`.
   */
  singleton?: SingletonOptions;
}

/** Settings of a `singleton` service's PostgreSQL advisory lock. */
export interface SingletonOptions {
  /** PostgreSQL connection string for the dedicated lock connection. */
  connectionString: string;
  /** Lock name; hashed to the advisory lock key. @default the service name */
  key?: string;
  /**
   * How often the holder renews the lock, in ms; a standby host asks for it twice as often. The server
   * ends a silent holder's session after max(3 × checkInterval, 1500) ms; the holder stands down earlier.
   * @default 750
   */
  checkInterval?: number;
  /**
   * Where each acquisition increments the lock's epoch (`ctx.fencing`); created on first use. `false`
   * hands out no fencing token. @default { schema: 'public', table: 'steward_singleton_epochs' }
   */
  epochTable?: { schema: string; table: string } | false;
}

/** A long-lived listener: `run` resolves once `ctx.signal` aborted and its in-flight work settled. */
export interface Service extends ServiceOptions {
  name: string;
  /** Runs until `ctx.signal` aborts and in-flight work settled; a rejection or early return is a crash. */
  run(ctx: ServiceContext): Promise<void>;
}
