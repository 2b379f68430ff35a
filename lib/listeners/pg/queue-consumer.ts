import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { backoffDelay, delay } from '../../common/backoff.js';
import { coerceError, StewardError } from '../../errors.js';
import type { ServiceContext } from '../../services/types.js';
import { dispatchesToWorkers, type IntakeSource, intakeOf, intakeSource } from '../dispatch.js';
import { isThenable, settleWithin } from '../handler-timeout.js';
import { ListenerHealth } from '../listener-health.js';
import { describeTarget, pgConnectionError } from './connection-error.js';
import type { ConsumerSettings } from './event-queue-options.js';
import { type HeldRow, LeaseBook, type Written } from './lease-book.js';
import { migrate } from './migrate.js';
import { NotifyConnection } from './notify-connection.js';
import { Pool } from './pg-driver.js';
import type { QueueEvent } from './queue-event.js';
import { RetryAlarm } from './retry-alarm.js';
import { claimEvents } from './sql/claim-events.js';
import { queueDepth, unhandledTypes } from './sql/queue-depth.js';
import { releaseEvents } from './sql/release-events.js';
import type { ClaimedRow } from './sql/types.js';
import { waitForDatabase } from './wait-for-database.js';

/** How often a consumer repeats the warning about events no handler of its own can run. */
const UNHANDLED_WARN_MS = 60_000;

interface Claimed extends HeldRow {
  /** Local clock when the claim returned, to add queueing time inside this process to the lag. */
  claimedAt: number;
  /** Its key line's id (`lineOf`), or null without a key: computed once per event. */
  line: string | null;
  /** The key line an outcome of this event waits on (see #nextOfKey and #handBack) until it is written. */
  keyLine: KeyLine | undefined;
}

/**
 * The events of one (type, key) this consumer holds, in id order: the first is ready, running, or waiting
 * for its outcome to be committed; the rest wait for it. A claim takes a held key's next events while the older ones are still held (see
 * claim-events.ts), so they queue here rather than in the table.
 */
interface KeyLine {
  waiting: Claimed[];
  /**
   * An event of the key failed (or its lease was found lost): its followers are handed back, and so is
   * whatever a claim still brings for the key. The line stays until the failure and every hand-back are
   * written and no claim that started before that is still running: until then the table still shows
   * events of the key as held here, and a claim could take the events behind them.
   */
  failed: boolean;
  /**
   * The key's running event succeeded (or was dead-lettered) and its outcome is being written: the first
   * waiting event runs as soon as that commit lands, so it does not count against the claim's room
   * (`#uncounted`), and the next claim is not cut short by events that are only waiting for a commit.
   */
  settled: boolean;
  failureWritten: boolean;
  /** Hand-backs not written yet. */
  releasing: number;
}

const lineOf = (row: Claimed) => `${row.type}\u0000${row.key}`;

/**
 * One run of a queue consumer. Claims due events in batches, runs up to `concurrency` handlers, and
 * writes their outcomes back in batches through the lease book (one commit per batch: every commit
 * waits for the disk, so batching is what makes a PostgreSQL queue fast).
 */
export class QueueConsumer {
  readonly #settings: ConsumerSettings;
  readonly #ctx: ServiceContext;
  readonly #owner = `${hostname()}:${process.pid}:${randomBytes(4).toString('hex')}`;
  readonly #types: string[];
  readonly #health: ListenerHealth;
  #pool!: Pool;
  #claimPool!: Pool;
  #book!: LeaseBook<Claimed>;
  #ready: Claimed[] = [];
  #readyHead = 0;
  #running = 0;
  #dispatching = false;
  /** Held keys by `lineOf`; an entry lives while an event of the key is here or its failure is unwritten. */
  readonly #lines = new Map<string, KeyLine>();
  /** Events waiting in a key line behind an older one. */
  #waiting = 0;
  /** Key lines that are `settled` and have an event waiting: that event is not counted as pending. */
  #uncounted = 0;
  #claiming = false;
  /** Failed key lines whose writes are done, to drop once the claim running meanwhile has returned. */
  #linesToDrop: string[] = [];
  #dirty = true;
  #waiter: (() => void) | null = null;
  #waitingForCapacity = false;
  readonly #retryAlarm = new RetryAlarm(() => this.#wake());
  #idleWaiters: Array<() => void> = [];
  /** The signals of the running handlers (with a `handlerTimeout`), aborted at stop. */
  readonly #controllers = new Set<AbortController>();
  /** Last measured depth; until then, assume a deep queue. */
  #depth = Number.POSITIVE_INFINITY;
  #unhandledWarnedAt = Number.NEGATIVE_INFINITY;
  #lastFullClaimAt = 0;
  /** Behind the workers' valve (handlers dispatched to them, or `valve: 'workers'`): claims follow it. */
  readonly #valve: IntakeSource | undefined;
  /**
   * Types whose handler gets a signal of its own per event, aborted at its deadline: those that declare a
   * second parameter. An `AbortController` per event cost about 3 µs of a drain's 6 µs per event in the
   * consumer; a handler that takes no signal gets the service's, which aborts at stop. A `toWorkers` handler
   * runs its events in a worker, out of reach of any abort, so it never gets one either.
   */
  readonly #ownSignalTypes: ReadonlySet<string>;

  constructor(settings: ConsumerSettings, ctx: ServiceContext) {
    this.#settings = settings;
    this.#ctx = ctx;
    this.#types = Object.keys(settings.handlers);
    const handlers = Object.entries(settings.handlers);
    const relayed = handlers.some(([, handler]) => dispatchesToWorkers(handler));
    this.#ownSignalTypes = new Set(
      handlers
        .filter(([, handler]) => handler.length >= 2 && !dispatchesToWorkers(handler))
        .map(([type]) => type),
    );
    this.#valve = intakeSource(relayed, settings.valve);
    this.#health = new ListenerHealth(ctx, {
      source: `PostgreSQL ${describeTarget(settings.connectionString)}`,
      concurrency: settings.concurrency,
      handlerTimeout: settings.handlerTimeout,
    });
  }

  async run(): Promise<void> {
    const s = this.#settings;
    const signal = this.#ctx.signal;
    const abortRunning = () => this.#abortRunning();
    signal.addEventListener('abort', abortRunning, { once: true });
    this.#pool = this.#createPool(s.poolSize);
    // A claim need not wait for the WAL flush: if PostgreSQL crashes before it is flushed, the claim is
    // gone and the event runs again, as after a consumer crash. Outcomes keep the server's setting, so a
    // key's next event is never claimed on the strength of a completion that could still be lost.
    // (An `options` parameter in the connection string replaces this one: claims then wait for the flush.)
    this.#claimPool = this.#createPool(1, '-c synchronous_commit=off');
    try {
      if (!(await waitForDatabase(this.#pool, s.connectionString, s.reconnect, this.#ctx, this.#health)))
        return;
      if (s.migrate) await migrate(this.#pool, s.names, this.#ctx.logger);
      this.#book = new LeaseBook<Claimed>(this.#pool, s.names, this.#owner, s.lease, this.#ctx, {
        onKeyFreed: () => this.#wake(),
        onRetryAt: (at) => this.#retryAlarm.add(at),
      });
      const listening = this.#listen(signal);
      const depth = this.#reportDepth(signal);
      await this.#claimLoop(signal);
      await this.#stop();
      await Promise.all([listening, depth]);
    } finally {
      signal.removeEventListener('abort', abortRunning);
      this.#health.dispose();
      this.#retryAlarm.clear();
      await Promise.all([this.#pool.end().catch(() => {}), this.#claimPool.end().catch(() => {})]);
    }
  }

  #createPool(max: number, options?: string): Pool {
    const pool = new Pool({
      connectionString: this.#settings.connectionString,
      max,
      ...(options ? { options } : {}),
      keepAlive: true,
      application_name: 'cluster-steward:queue',
    });
    pool.on('error', (error) => this.#ctx.logger.warn({ err: error }, 'queue:pool:error'));
    return pool;
  }

  #listen(signal: AbortSignal): Promise<void> {
    const s = this.#settings;
    const connection = new NotifyConnection({
      connectionString: s.connectionString,
      channels: [s.names.channel],
      logger: this.#ctx.logger,
      checkInterval: s.checkInterval,
      checkTimeout: s.checkTimeout,
      reconnect: s.reconnect,
      onNotification: () => this.#wake(),
      // Wake-ups sent while disconnected are gone: claim once after every (re)connection.
      onConnect: () => this.#wake(),
      onDisconnect: () => {},
    });
    return connection.run(signal);
  }

  async #reportDepth(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      try {
        const { depth, oldestAgeMs, unhandled } = await queueDepth(this.#pool, this.#settings.names, {
          types: this.#types,
        });
        this.#depth = depth;
        this.#ctx.setQueueDepth(depth, oldestAgeMs);
        if (unhandled > 0) await this.#warnUnhandled();
      } catch (error) {
        this.#ctx.logger.debug({ err: error }, 'queue:depth:failed');
      }
      await delay(this.#settings.depthInterval, signal);
    }
  }

  /**
   * Events of a type with no handler here are never claimed (consumers with other handlers may share the
   * table), so they could wait forever unnoticed: say so, at most once per UNHANDLED_WARN_MS.
   */
  async #warnUnhandled(): Promise<void> {
    const now = Date.now();
    if (now - this.#unhandledWarnedAt < UNHANDLED_WARN_MS) return;
    this.#unhandledWarnedAt = now;
    const types = await unhandledTypes(this.#pool, this.#settings.names, { types: this.#types });
    this.#ctx.logger.warn(
      { code: 'STEWARD_ERR_NO_HANDLER', types, handlers: this.#types },
      'queue:unhandled-types',
    );
  }

  async #claimLoop(signal: AbortSignal): Promise<void> {
    const s = this.#settings;
    let failures = 0;
    while (!signal.aborted) {
      const concurrency = this.#concurrency();
      // Behind the valve, no more is claimed than the workers take now (plus as many ready to follow).
      const prefetch = this.#valve ? Math.min(s.batchSize, concurrency) : s.batchSize;
      const capacity = prefetch + concurrency - this.#pending();
      if (capacity <= 0) {
        this.#waitingForCapacity = true;
        await this.#sleep(s.pollInterval, signal);
        this.#waitingForCapacity = false;
        continue;
      }
      this.#dirty = false;
      const limit = Math.min(s.batchSize, capacity);
      let rows: ClaimedRow[];
      this.#claiming = true;
      try {
        rows = await this.#claim(limit);
      } catch (thrown) {
        this.#claiming = false;
        this.#dropWrittenLines();
        const error = pgConnectionError(s.connectionString, thrown);
        this.#ctx.setConnected(false);
        this.#health.disconnected(error);
        const wait = backoffDelay(failures++, s.reconnect);
        this.#ctx.logger.warn({ err: error, delayMs: wait }, 'queue:claim:failed');
        await delay(wait, signal);
        continue;
      }
      this.#claiming = false;
      failures = 0;
      this.#health.connected();
      this.#ctx.setConnected(true);
      this.#ctx.ready();
      this.#ctx.progress();
      this.#accept(rows);
      this.#dropWrittenLines();
      this.#health.handlersRunning(this.#running);
      if (rows.length < limit && !this.#dirty) await this.#sleep(s.pollInterval, signal);
    }
  }

  /**
   * Claims within the oldest events (a bounded cost however deep a backlog of busy keys is). The whole
   * queue is looked at only when that window held nothing claimable, more events lie beyond it and this
   * consumer holds nothing (no completion of its own will free a key), at most once per `pollInterval`:
   * keys beyond a window of events leased elsewhere or waiting for a retry still make progress.
   */
  async #claim(limit: number): Promise<ClaimedRow[]> {
    const s = this.#settings;
    const args = { owner: this.#owner, limit, leaseMs: s.lease, types: this.#types, coalesce: s.coalesce };
    const window = Math.max(500, 2 * s.batchSize);
    const rows = await claimEvents(this.#claimPool, s.names, { ...args, window });
    const now = Date.now();
    const fullScan =
      rows.length === 0 &&
      this.#depth > window &&
      this.#book.held === 0 &&
      now - this.#lastFullClaimAt >= s.pollInterval;
    if (!fullScan) return rows;
    this.#lastFullClaimAt = now;
    return claimEvents(this.#claimPool, s.names, args);
  }

  #accept(rows: ClaimedRow[]): void {
    const now = Date.now();
    for (const row of rows) {
      const claimed = row as Claimed;
      // Every field set on every event, in one order: the rows keep one shape.
      claimed.claimedAt = now;
      claimed.written = undefined;
      claimed.keyLine = undefined;
      claimed.line = claimed.key === null ? null : lineOf(claimed);
      this.#book.hold(claimed);
      const id = claimed.line;
      if (id === null) {
        this.#ready.push(claimed);
        continue;
      }
      const line = this.#lines.get(id);
      if (line === undefined) {
        this.#lines.set(id, {
          waiting: [],
          failed: false,
          settled: false,
          failureWritten: false,
          releasing: 0,
        });
        this.#ready.push(claimed);
      } else if (line.failed) this.#handBack(line, claimed);
      else {
        if (line.settled && line.waiting.length === 0) this.#uncounted++;
        line.waiting.push(claimed);
        this.#waiting++;
      }
    }
    this.#dispatch();
  }

  /**
   * For a keyed event that succeeded (or was dead-lettered): once that outcome is committed, the key's
   * next event held here runs, or the key is no longer held. Waiting for the commit keeps what the table
   * promises: after a crash, no event runs again after a later one of its key has run.
   */
  #nextOfKey(row: Claimed): Written<Claimed> | undefined {
    if (row.line === null) return undefined;
    const settling = this.#lines.get(row.line);
    if (settling !== undefined && !settling.failed) this.#settle(settling, true);
    row.keyLine = settling;
    return this.#keyOutcomeWritten;
  }

  /** One function for every keyed outcome (no closure per event): what it needs is on the event. */
  readonly #keyOutcomeWritten: Written<Claimed> = (row, lost) => {
    const id = row.line!;
    const settling = row.keyLine;
    row.keyLine = undefined;
    if (settling !== undefined) this.#settle(settling, false);
    if (lost) {
      // Another consumer may have taken the key over: stop here, as after a failure.
      this.#blockKey(row);
      this.#failureWritten(row);
      return;
    }
    const line = this.#lines.get(id);
    if (line === undefined || line.failed) return;
    const next = line.waiting.shift();
    if (next === undefined) {
      this.#lines.delete(id);
      return;
    }
    this.#waiting--;
    this.#ready.push(next);
    this.#dispatch();
  };

  #settle(line: KeyLine, settled: boolean): void {
    if (line.settled === settled) return;
    line.settled = settled;
    if (line.waiting.length > 0) this.#uncounted += settled ? 1 : -1;
  }

  /** A keyed event failed and runs again later: nothing of its key may run before, here or elsewhere. */
  #blockKey(row: Claimed): void {
    const id = row.line!;
    const line = this.#lines.get(id);
    if (line === undefined) return;
    this.#settle(line, false);
    line.failed = true;
    this.#waiting -= line.waiting.length;
    for (const follower of line.waiting.splice(0)) this.#handBack(line, follower);
  }

  #handBack(line: KeyLine, row: Claimed): void {
    line.releasing++;
    row.keyLine = line;
    this.#book.release(row, this.#handedBack);
  }

  readonly #handedBack: Written<Claimed> = (row) => {
    const line = row.keyLine!;
    row.keyLine = undefined;
    line.releasing--;
    this.#dropIfSettled(row.line!, line);
  };

  /** A keyed event's failure is written: its line may go (also called directly, for a lost lease). */
  readonly #failureWritten = (row: Claimed): void => {
    const id = row.line!;
    const line = this.#lines.get(id);
    if (line === undefined) return;
    line.failureWritten = true;
    this.#dropIfSettled(id, line);
  };

  /**
   * A failed line whose writes are all done is dropped, but not while a claim runs: it may have read the
   * table before, when events of the key were still held here, and bring the ones behind them.
   */
  #dropIfSettled(id: string, line: KeyLine): void {
    if (!line.failed || !line.failureWritten || line.releasing > 0) return;
    if (this.#claiming) this.#linesToDrop.push(id);
    else if (this.#lines.get(id) === line) this.#lines.delete(id);
  }

  #dropWrittenLines(): void {
    for (const id of this.#linesToDrop.splice(0)) {
      const line = this.#lines.get(id);
      if (line !== undefined) this.#dropIfSettled(id, line);
    }
  }

  /** Handlers run at once now: `concurrency`, or less while the workers' valve admits less. */
  #concurrency(): number {
    const { concurrency } = this.#settings;
    return this.#valve ? Math.max(1, Math.min(concurrency, intakeOf(this.#valve))) : concurrency;
  }

  /** Claimed events not yet handled (waiting or running), but for a key's next event ready to follow a commit. */
  #pending(): number {
    return this.#ready.length - this.#readyHead + this.#running + this.#waiting - this.#uncounted;
  }

  #dispatch(): void {
    // A handler that settles at once ends inside this loop: the loop itself then starts the next one.
    if (this.#dispatching) return;
    this.#dispatching = true;
    const signal = this.#ctx.signal;
    try {
      while (this.#running < this.#concurrency() && this.#readyHead < this.#ready.length && !signal.aborted) {
        const row = this.#ready[this.#readyHead++]!;
        this.#running++;
        this.#handle(row);
      }
    } finally {
      this.#dispatching = false;
    }
    if (this.#readyHead === this.#ready.length) {
      this.#ready = [];
      this.#readyHead = 0;
    }
  }

  /**
   * Runs one event's handler. A handler that returns without a promise is settled in the same turn: no
   * promise, microtask or deadline is made for it (at a drain's rate those showed in CPU profiles).
   */
  #handle(row: Claimed): void {
    const started = Date.now();
    const lagMs = Math.max(0, Math.round(row.lag_ms + (started - row.claimedAt)));
    const event: QueueEvent = {
      id: row.id,
      type: row.type,
      key: row.key,
      payload: row.payload,
      createdAt: new Date(row.created_ms),
      attempts: row.attempts,
    };
    const { handlers, handlerTimeout } = this.#settings;
    const handler = handlers[event.type]!;
    let controller: AbortController | undefined;
    let result: unknown;
    try {
      // Without a signal of its own the event still gets its deadline below: only the abort is left out.
      if (handlerTimeout <= 0 || !this.#ownSignalTypes.has(event.type))
        result = handler(event, this.#ctx.signal);
      else {
        // The handler's own signal; the consumer aborts it at stop (see #abortRunning), so it need not
        // be joined to the stop signal with AbortSignal.any (which cost more than the rest of a run).
        controller = new AbortController();
        this.#controllers.add(controller);
        result = handler(event, controller.signal);
      }
    } catch (thrown) {
      this.#failed(row, thrown, started, lagMs, controller);
      return;
    }
    if (!isThenable(result)) {
      this.#succeeded(row, started, lagMs, controller);
      return;
    }
    const deadline =
      handlerTimeout > 0
        ? settleWithin(result, {
            timeout: handlerTimeout,
            abort: (reason) => controller?.abort(reason),
            fields: { eventId: event.id, type: event.type, key: event.key, attempts: event.attempts },
            logger: this.#ctx.logger,
            prefix: 'queue',
          })
        : Promise.resolve(result);
    deadline.then(
      () => this.#succeeded(row, started, lagMs, controller),
      (thrown: unknown) => this.#failed(row, thrown, started, lagMs, controller),
    );
  }

  #succeeded(row: Claimed, started: number, lagMs: number, controller: AbortController | undefined): void {
    if (controller) this.#controllers.delete(controller);
    this.#health.handlerEnded(false);
    this.#book.complete(row, this.#nextOfKey(row));
    this.#ctx.recordEvent({ outcome: 'processed', durationMs: Date.now() - started, lagMs });
    this.#handlerDone();
  }

  #failed(
    row: Claimed,
    thrown: unknown,
    started: number,
    lagMs: number,
    controller: AbortController | undefined,
  ): void {
    if (controller) this.#controllers.delete(controller);
    const timedOut = thrown instanceof StewardError && thrown.code === 'STEWARD_ERR_HANDLER_TIMEOUT';
    this.#health.handlerEnded(timedOut);
    this.#fail(row, coerceError(thrown), { durationMs: Date.now() - started, lagMs, timedOut });
    this.#handlerDone();
  }

  #handlerDone(): void {
    this.#running--;
    this.#dispatch();
    if (this.#waitingForCapacity) this.#nudge();
    if (this.#running === 0) for (const resolve of this.#idleWaiters.splice(0)) resolve();
  }

  /** At stop, every running handler's own signal aborts too. */
  #abortRunning(): void {
    const reason = this.#ctx.signal.reason;
    for (const controller of this.#controllers) controller.abort(reason);
  }

  #fail(
    row: Claimed,
    error: Error,
    measured: { durationMs: number; lagMs: number; timedOut: boolean },
  ): void {
    const s = this.#settings;
    const message = `${error.name}: ${error.message}`.slice(0, 4_000);
    const log = { eventId: row.id, type: row.type, key: row.key, attempts: row.attempts, err: error };
    if (row.attempts >= s.maxAttempts) {
      this.#ctx.logger.error(log, 'queue:event:dead-lettered');
      this.#book.deadLetter(row, message, this.#nextOfKey(row));
      this.#ctx.recordEvent({ outcome: 'dead_lettered', ...measured });
      return;
    }
    const delayMs = backoffDelay(row.attempts - 1, s.retry);
    this.#ctx.logger.warn({ ...log, retryInMs: delayMs }, 'queue:event:failed');
    if (row.line === null) this.#book.fail(row, message, delayMs);
    else {
      this.#blockKey(row);
      this.#book.fail(row, message, delayMs, this.#failureWritten);
    }
    this.#ctx.recordEvent({ outcome: 'failed', ...measured });
  }

  /** New events may be due: claim again at once. */
  #wake(): void {
    this.#dirty = true;
    this.#nudge();
  }

  #nudge(): void {
    const waiter = this.#waiter;
    this.#waiter = null;
    waiter?.();
  }

  #sleep(ms: number, signal: AbortSignal): Promise<void> {
    if (signal.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        signal.removeEventListener('abort', done);
        if (this.#waiter === done) this.#waiter = null;
        resolve();
      };
      const timer = setTimeout(done, ms);
      signal.addEventListener('abort', done, { once: true });
      this.#waiter = done;
    });
  }

  /** Graceful stop: unstarted events go back at once, running handlers finish, outcomes are written. */
  async #stop(): Promise<void> {
    const unstarted = this.#ready.slice(this.#readyHead);
    for (const line of this.#lines.values()) unstarted.push(...line.waiting.splice(0));
    this.#waiting = 0;
    this.#uncounted = 0;
    this.#ready = [];
    this.#readyHead = 0;
    if (unstarted.length > 0) {
      const ids = unstarted.map((row) => row.id);
      try {
        await releaseEvents(this.#pool, this.#settings.names, { owner: this.#owner, ids });
        this.#ctx.logger.info({ released: ids.length }, 'queue:stop:released');
      } catch (error) {
        this.#ctx.logger.warn({ err: error, count: ids.length }, 'queue:stop:release-failed');
      }
      for (const row of unstarted) this.#book.forget(row.id);
    }
    if (this.#running > 0) await new Promise<void>((resolve) => this.#idleWaiters.push(resolve));
    await this.#book.close();
  }
}
