import { backoffDelay, delay } from '../../common/backoff.js';
import type { ServiceContext } from '../../services/types.js';
import type { QueueNames } from './identifiers.js';
import { type CompleteArgs, completeEvents } from './sql/complete-events.js';
import { deadLetterEvents } from './sql/dead-letter-events.js';
import { failEvents } from './sql/fail-events.js';
import { releaseEvents } from './sql/release-events.js';
import { renewLeases } from './sql/renew-leases.js';
import type { ClaimedRow, Queryable } from './sql/types.js';

export interface LeaseBookHooks {
  /** An event with a key left the table: the next event of that key may now be claimed. */
  onKeyFreed(): void;
  /** A failed event is due again at this epoch ms. */
  onRetryAt(at: number): void;
}

/**
 * Runs once an event's outcome is written; `lost` when some outcome of that write was refused because its
 * lease had passed to another claim (which ones, the write does not tell).
 */
export type Written<R extends HeldRow = HeldRow> = (row: R, lost: boolean) => void;

/**
 * A claimed event in the book. What runs once its outcome is written is kept on the event itself rather
 * than in a map by id: at a drain's rate a map entry and a closure per event showed in allocation profiles.
 */
export interface HeldRow extends ClaimedRow {
  /** Set by the book; it is always a `Written` of the book's own row type. */
  written: Written<never> | undefined;
}

interface Failure<R extends HeldRow> {
  row: R;
  error: string;
  delayMs: number;
}

const FLUSH_BACKOFF = { initialDelay: 50, maxDelay: 5_000, jitter: 0.3 };
/** Flush attempts at stop before giving up; the leases then expire and the events run again. */
const STOP_FLUSH_ATTEMPTS = 5;

/**
 * The events a consumer holds under lease: renews their lease while they are held, and writes outcomes
 * in batches. While one batch is being written the next one accumulates, so under load every commit
 * carries many events and at low rates each outcome is written on the next turn of the event loop.
 */
export class LeaseBook<R extends HeldRow = HeldRow> {
  readonly #db: Queryable;
  readonly #names: QueueNames;
  readonly #owner: string;
  readonly #leaseMs: number;
  readonly #ctx: ServiceContext;
  readonly #hooks: LeaseBookHooks;
  readonly #held = new Map<string, R>();
  #completions: R[] = [];
  #failures: Failure<R>[] = [];
  #dead: Failure<R>[] = [];
  #releases: R[] = [];
  #flushing: Promise<void> | null = null;
  #flushFailures = 0;
  #closed = false;
  readonly #renewTimer: NodeJS.Timeout;

  constructor(
    db: Queryable,
    names: QueueNames,
    owner: string,
    leaseMs: number,
    ctx: ServiceContext,
    hooks: LeaseBookHooks,
  ) {
    this.#db = db;
    this.#names = names;
    this.#owner = owner;
    this.#leaseMs = leaseMs;
    this.#ctx = ctx;
    this.#hooks = hooks;
    // A third of the lease leaves two chances to renew before another consumer may take the events.
    this.#renewTimer = setInterval(() => void this.#renew(), Math.max(100, Math.floor(leaseMs / 3)));
  }

  /** Events leased by this consumer whose outcome is not written yet. */
  get held(): number {
    return this.#held.size;
  }

  hold(row: R): void {
    this.#held.set(row.id, row);
  }

  forget(id: string): void {
    this.#held.delete(id);
  }

  /** `written`, if given, runs once the outcome is committed (each outcome below takes one too). */
  complete(row: R, written?: Written<R>): void {
    this.#completions.push(row);
    this.#whenWritten(row, written);
  }

  fail(row: R, error: string, delayMs: number, written?: Written<R>): void {
    this.#failures.push({ row, error, delayMs });
    this.#whenWritten(row, written);
  }

  /**
   * Hands back a claimed event that will not run here (it waited behind an event of its key that failed),
   * without counting an attempt. In one write it follows the failures; a write already under way may
   * carry it before the failure it waited for, so the consumer keeps the key blocked until both are written.
   */
  release(row: R, written?: Written<R>): void {
    this.#releases.push(row);
    this.#whenWritten(row, written);
  }

  deadLetter(row: R, error: string, written?: Written<R>): void {
    this.#dead.push({ row, error, delayMs: 0 });
    this.#whenWritten(row, written);
  }

  #whenWritten(row: R, written: Written<R> | undefined): void {
    row.written = written;
    this.#schedule();
  }

  /** Writes every buffered outcome (bounded retries), then stops renewing. */
  async close(): Promise<void> {
    for (let attempt = 0; attempt < STOP_FLUSH_ATTEMPTS; attempt++) {
      if (this.#flushing) await this.#flushing;
      if (!this.#hasOutcomes()) break;
      this.#schedule();
    }
    this.#closed = true;
    if (this.#flushing) await this.#flushing;
    clearInterval(this.#renewTimer);
    if (this.#hasOutcomes())
      this.#ctx.logger.warn({ held: this.#held.size }, 'queue:stop:outcomes-unwritten');
  }

  #hasOutcomes(): boolean {
    return this.#completions.length + this.#failures.length + this.#dead.length + this.#releases.length > 0;
  }

  #schedule(): void {
    if (this.#flushing || !this.#hasOutcomes()) return;
    // The write starts on the next turn of the event loop, so the outcomes of handlers that settle in this
    // one (a claimed batch of quick handlers settles in one go) share its commit: started at the first
    // outcome, a write carried that one alone and the rest of the batch waited for the next commit.
    this.#flushing = new Promise<void>((resolve) => setImmediate(resolve))
      .then(() => this.#flush())
      .finally(() => {
        this.#flushing = null;
        if (!this.#closed) this.#schedule();
      });
  }

  async #flush(): Promise<void> {
    const completions = this.#completions.splice(0);
    const failures = this.#failures.splice(0);
    const dead = this.#dead.splice(0);
    const releases = this.#releases.splice(0);
    try {
      await this.#write(completions, failures, dead, releases);
      this.#flushFailures = 0;
    } catch (error) {
      // Keep the outcomes (at the front, in order) and try again; the leases are renewed meanwhile.
      this.#completions.unshift(...completions);
      this.#failures.unshift(...failures);
      this.#dead.unshift(...dead);
      this.#releases.unshift(...releases);
      const wait = backoffDelay(this.#flushFailures++, FLUSH_BACKOFF);
      this.#ctx.logger.warn({ err: error, delayMs: wait }, 'queue:complete:failed');
      await delay(wait);
      return;
    }
    this.#ctx.progress();
  }

  async #write(completions: R[], failures: Failure<R>[], dead: Failure<R>[], releases: R[]): Promise<void> {
    const owner = this.#owner;
    let leaseLost = 0;
    if (completions.length > 0) {
      const plain: CompleteArgs['plain'] = [];
      const coalesced: CompleteArgs['coalesced'] = [];
      for (const { id, attempts, type, key, upto } of completions) {
        if (upto !== null && key !== null) coalesced.push({ id, attempts, type, key, upto });
        else plain.push({ id, attempts });
      }
      const result = await completeEvents(this.#db, this.#names, { owner, plain, coalesced });
      for (let i = 0; i < result.merged; i++) this.#ctx.recordEvent({ outcome: 'duplicate' });
      leaseLost += result.leaseLost;
    }
    if (failures.length > 0) {
      const list = failures.map((f) => ({
        id: f.row.id,
        attempts: f.row.attempts,
        error: f.error,
        delayMs: f.delayMs,
      }));
      leaseLost += list.length - (await failEvents(this.#db, this.#names, { owner, failures: list }));
    }
    if (dead.length > 0) {
      const list = dead.map((f) => ({ id: f.row.id, attempts: f.row.attempts, error: f.error }));
      leaseLost += list.length - (await deadLetterEvents(this.#db, this.#names, { owner, failures: list }));
    }
    // After the failures of the same write: the events they held back wait behind them.
    if (releases.length > 0)
      await releaseEvents(this.#db, this.#names, { owner, ids: releases.map((row) => row.id) });
    if (leaseLost > 0) {
      // This consumer was frozen or cut off past its lease: another claim owns these events now, and
      // its outcome is the one that counts. What this consumer did with them was duplicate work.
      this.#ctx.logger.warn({ count: leaseLost, leaseMs: this.#leaseMs }, 'queue:complete:lease-lost');
      for (let i = 0; i < leaseLost; i++) this.#ctx.recordEvent({ outcome: 'duplicate' });
    }
    const lost = leaseLost > 0;
    let keyFreed = false;
    for (const row of completions) keyFreed = this.#release(row, lost) || keyFreed;
    for (const { row } of dead) keyFreed = this.#release(row, lost) || keyFreed;
    for (const failure of failures) {
      this.#release(failure.row, lost);
      this.#hooks.onRetryAt(Date.now() + failure.delayMs);
    }
    for (const row of releases) this.#release(row, lost);
    if (keyFreed) this.#hooks.onKeyFreed();
  }

  #release(row: R, lost: boolean): boolean {
    this.#held.delete(row.id);
    const written = row.written as Written<R> | undefined;
    if (written) {
      row.written = undefined;
      written(row, lost);
    }
    return row.key !== null;
  }

  async #renew(): Promise<void> {
    if (this.#held.size === 0) return;
    const ids = [...this.#held.keys()];
    try {
      const kept = await renewLeases(this.#db, this.#names, {
        owner: this.#owner,
        ids,
        leaseMs: this.#leaseMs,
      });
      if (kept.length < ids.length) {
        const keptSet = new Set(kept);
        // Outcomes written meanwhile also drop out of the set; only ids still held were really lost.
        const lost = ids.filter((id) => !keptSet.has(id) && this.#held.has(id));
        if (lost.length > 0) this.#ctx.logger.warn({ lost: lost.length }, 'queue:lease:lost');
      }
    } catch (error) {
      this.#ctx.logger.warn({ err: error }, 'queue:lease:renew-failed');
    }
  }
}
