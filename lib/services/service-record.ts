import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import { serializeError } from '../errors.js';
import { observeHandlerDuration } from './handler-durations.js';
import type { FencingToken } from './lease.js';
import type { EventRecord, ServiceContext, ServiceState, ServiceStatus } from './types.js';

export interface ServiceRecordEvents {
  /** Any status field changed (the host debounces pushes). */
  change: [ServiceStatus];
  /** `progress()` was called. */
  progress: [];
}

/** Records alive in this process; the metrics module reads them at scrape time. */
export const serviceRecords = new Set<ServiceRecord>();

/** Called with each new record before it can record an event (the metrics module subscribes here). */
export const serviceRecordCreated = new Set<(record: ServiceRecord) => void>();

/**
 * The live status of one service and the source of its `ServiceContext`. The host owns one per
 * service for the whole life of the process, so counters survive restarts of the service.
 */
export class ServiceRecord extends EventEmitter<ServiceRecordEvents> {
  readonly status: ServiceStatus;
  lastProgressAt = Date.now();
  /**
   * Since when the service is neither running nor waiting in standby (epoch ms), or null: the host
   * reports a service that stays out of `running` too long as unable to make progress.
   */
  notRunningSince: number | null = Date.now();
  /**
   * Set when the stall watchdog restarted the service, cleared by its next progress: a service that
   * stalls again and again spends most of its time `running`, yet moves nothing.
   */
  stalled = false;
  /** What the service itself reported through `ctx.setProblem()`, for its current run. */
  #reportedProblem: string | null = null;
  /** What the host sees from outside: failed, out of running too long, a blocked event loop. */
  #hostProblem: string | null = null;

  constructor(name: string, singleton: boolean) {
    super();
    this.status = {
      name,
      state: 'starting',
      since: Date.now(),
      restarts: 0,
      lastError: null,
      processed: 0,
      failed: 0,
      deadLettered: 0,
      duplicates: 0,
      handlerTimeouts: 0,
      lastEventAt: null,
      lagMs: null,
      queueDepth: null,
      oldestAgeMs: null,
      connected: null,
      leader: singleton ? false : null,
      problem: null,
    };
    serviceRecords.add(this);
    for (const onCreated of serviceRecordCreated) onCreated(this);
  }

  /** Forgets the record (the host stopped for good). */
  dispose(): void {
    serviceRecords.delete(this);
    this.removeAllListeners();
  }

  setState(state: ServiceState, error?: unknown): void {
    if (error !== undefined) this.status.lastError = serializeError(error);
    if (this.status.state === state && error === undefined) return;
    this.status.state = state;
    this.status.since = Date.now();
    if (state === 'running' || state === 'standby') this.notRunningSince = null;
    else this.notRunningSince ??= this.status.since;
    this.emit('change', this.status);
  }

  update(fields: Partial<ServiceStatus>): void {
    Object.assign(this.status, fields);
    this.emit('change', this.status);
  }

  /** A stall is possible only while the source is connected or work is queued. */
  get hasWork(): boolean {
    return this.status.connected === true || (this.status.queueDepth ?? 0) > 0;
  }

  /** A context bound to one run of the service (a new one per restart, with a new signal). */
  createContext(signal: AbortSignal, logger: Logger, fencing: FencingToken | null = null): ServiceContext {
    // A new run starts with a clean slate: the problem a crashed run reported died with it.
    this.setProblem(null);
    return {
      name: this.status.name,
      fencing,
      signal,
      logger,
      ready: () => this.setState('running'),
      standby: (reason) => {
        if (reason) logger.info({ reason }, 'service:standby');
        this.setState('standby');
      },
      progress: () => {
        this.lastProgressAt = Date.now();
        this.stalled = false;
        this.emit('progress');
      },
      recordEvent: (event) => this.recordEvent(event),
      setQueueDepth: (depth, oldestAgeMs) =>
        this.update({ queueDepth: depth, oldestAgeMs: oldestAgeMs ?? null }),
      setConnected: (connected) => {
        if (this.status.connected !== connected) this.update({ connected });
      },
      setProblem: (problem) => this.setProblem(problem),
    };
  }

  /** What the service reports about itself (`ctx.setProblem`). */
  setProblem(problem: string | null): void {
    this.#reportedProblem = problem;
    this.#publishProblem();
  }

  /** What the host sees from outside; shown before the service's own report when both exist. */
  setHostProblem(problem: string | null): void {
    this.#hostProblem = problem;
    this.#publishProblem();
  }

  #publishProblem(): void {
    const parts = [this.#hostProblem, this.#reportedProblem].filter((part) => part !== null);
    const problem = parts.length === 0 ? null : parts.join('; ');
    if (this.status.problem === problem) return;
    this.status.problem = problem;
    this.emit('change', this.status);
  }

  recordEvent(event: EventRecord): void {
    const status = this.status;
    if (event.outcome === 'processed') status.processed++;
    else if (event.outcome === 'failed') status.failed++;
    else if (event.outcome === 'dead_lettered') status.deadLettered++;
    else status.duplicates++;
    if (event.timedOut) status.handlerTimeouts++;
    status.lastEventAt = Date.now();
    if (event.lagMs !== undefined) status.lagMs = event.lagMs;
    this.lastProgressAt = status.lastEventAt;
    this.stalled = false;
    observeHandlerDuration(status.name, event);
    this.emit('change', status);
  }
}
