import type { Logger } from 'pino';
import type { FencingToken } from './lease.js';
import type { ServiceOptions } from './service-spec.js';

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

export type { RestartOptions, ServiceOptions, SingletonOptions } from './service-spec.js';

/** A long-lived listener: `run` resolves once `ctx.signal` aborted and its in-flight work settled. */
export interface Service extends ServiceOptions {
  name: string;
  /** Runs until `ctx.signal` aborts and in-flight work settled; a rejection or early return is a crash. */
  run(ctx: ServiceContext): Promise<void>;
}
