import type { Logger } from 'pino';
import { StewardError } from '../errors.js';

/** What a listener needs to bound one handler run. */
export interface HandlerDeadline {
  /** ms; 0 means no limit. */
  timeout: number;
  /** Aborts the handler's own signal, so a cooperative handler stops its work. */
  abort(reason: Error): void;
  /** Log fields naming the event, for the timeout line and the late settlement line. */
  fields: Record<string, unknown>;
  logger: Logger;
  /** Prefix of the log events: `<prefix>:handler:timeout`, `<prefix>:handler:abandoned:settled`. */
  prefix: string;
}

interface PendingRun {
  expiresAt: number;
  work: Promise<unknown>;
  deadline: HandlerDeadline;
  reject(error: Error): void;
}

/**
 * The runs of one timeout length, in start order, which is also their expiry order: one timer serves
 * them all, armed for the oldest run, instead of a timer created and cleared per handler run (at
 * thousands of events a second those timers and their promise races showed in profiles). A run that
 * ends leaves the set; the timer, when it fires for a run already gone, re-arms for the next one.
 */
class DeadlineSweep {
  readonly #timeout: number;
  readonly #runs = new Set<PendingRun>();
  #timer: NodeJS.Timeout | undefined;

  constructor(timeout: number) {
    this.#timeout = timeout;
  }

  add(work: Promise<unknown>, deadline: HandlerDeadline, reject: (error: Error) => void): PendingRun {
    const run = { expiresAt: performance.now() + this.#timeout, work, deadline, reject };
    this.#runs.add(run);
    this.#timer ??= this.#arm(this.#timeout);
    return run;
  }

  /** True when the run was still pending (it had not timed out). */
  remove(run: PendingRun): boolean {
    return this.#runs.delete(run);
  }

  /**
   * Unref'd: it may outlive the last run by up to one timeout, and must not hold a stopping process
   * open for that; a pending handler is waiting on something that keeps the process alive itself.
   */
  #arm(delay: number): NodeJS.Timeout {
    const timer = setTimeout(() => this.#sweep(), delay);
    timer.unref();
    return timer;
  }

  #sweep(): void {
    this.#timer = undefined;
    const now = performance.now();
    for (const run of this.#runs) {
      if (run.expiresAt > now) {
        this.#timer = this.#arm(Math.ceil(run.expiresAt - now));
        return;
      }
      this.#runs.delete(run);
      expire(run, this.#timeout);
    }
  }
}

function expire(run: PendingRun, timeout: number): void {
  const { deadline, work } = run;
  const error = new StewardError(
    'STEWARD_ERR_HANDLER_TIMEOUT',
    `The handler did not settle within handlerTimeout (${timeout} ms); its promise is abandoned`,
    { details: { handlerTimeout: timeout } },
  );
  const started = Date.now();
  deadline.logger.warn({ ...deadline.fields, handlerTimeout: timeout }, `${deadline.prefix}:handler:timeout`);
  deadline.abort(error);
  void work
    .then(
      () => false,
      () => true,
    )
    .then((failed) =>
      deadline.logger.info(
        { ...deadline.fields, failed, lateMs: Date.now() - started },
        `${deadline.prefix}:handler:abandoned:settled`,
      ),
    );
  run.reject(error);
}

const sweeps = new Map<number, DeadlineSweep>();

export function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (
    (typeof value === 'object' || typeof value === 'function') &&
    value !== null &&
    typeof (value as { then?: unknown }).then === 'function'
  );
}

/**
 * Runs `handler` and settles like it, unless it is still pending after `deadline.timeout`: then rejects
 * with STEWARD_ERR_HANDLER_TIMEOUT, so the listener fails the event (retry or dead letter) and frees its
 * slot, its key and its credit. A promise cannot be cancelled: the stuck one is abandoned, its signal
 * aborted, and its late settlement only logged (its outcome no longer decides anything). A handler that
 * returns without a promise has already finished: it needs no deadline.
 */
export function runWithTimeout(handler: () => unknown, deadline: HandlerDeadline): Promise<unknown> {
  let result: unknown;
  try {
    result = handler();
  } catch (error) {
    return Promise.reject(error);
  }
  if (!isThenable(result)) return Promise.resolve(result);
  return settleWithin(result, deadline);
}

/**
 * The deadline part of `runWithTimeout`, for a listener that calls the handler itself: it settles a
 * handler that returned without a promise at once, and only a pending one (`work`) needs a deadline.
 */
export function settleWithin(result: PromiseLike<unknown>, deadline: HandlerDeadline): Promise<unknown> {
  const work = Promise.resolve(result);
  const { timeout } = deadline;
  if (timeout <= 0) return work;
  let sweep = sweeps.get(timeout);
  if (!sweep) {
    sweep = new DeadlineSweep(timeout);
    sweeps.set(timeout, sweep);
  }
  const owner = sweep;
  return new Promise((resolve, reject) => {
    const run = owner.add(work, deadline, reject);
    work.then(
      (value) => {
        if (owner.remove(run)) resolve(value);
      },
      (error: unknown) => {
        if (owner.remove(run)) reject(error);
      },
    );
  });
}
