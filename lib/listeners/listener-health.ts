import { redactSecrets } from '../common/logger.js';
import type { ServiceContext } from '../services/types.js';

/**
 * A listener without its source for this long cannot make progress: health says so. Shorter than the
 * 10 s within which health must report it, longer than a reconnect after a dropped connection (at most
 * 1 s of backoff plus the handshake), so an ordinary reconnect never shows as unhealthy.
 */
export const DISCONNECTED_PROBLEM_AFTER_MS = 5_000;

/**
 * A connection counts as back only once it stayed up this long: a link that attaches and drops at once
 * (a broker refusing it, a poison message) is one outage, not a string of short ones that never add up
 * to a problem. Listeners also restart their reconnect backoff only after a connection this stable.
 */
export const STABLE_CONNECTION_MS = 1_000;

/** What the listener consumes from, for the problem text: `PostgreSQL 127.0.0.1:5432/app`, `AMQP broker ...`. */
export interface ListenerHealthOptions {
  source: string;
  /** Handlers running at once: this many timeouts in a row (and no success between) mean "stuck". */
  concurrency: number;
  /** The handler timeout in ms, for the problem text; 0 means there is none (nothing is ever stuck). */
  handlerTimeout: number;
}

/**
 * The one rule every listener follows to say it cannot make progress (`ctx.setProblem`):
 *
 * - disconnected: no connection to the source for DISCONNECTED_PROBLEM_AFTER_MS, from the start of the
 *   run or from the loss of the connection, where connections shorter than STABLE_CONNECTION_MS do not
 *   interrupt the outage; cleared once a connection stayed up STABLE_CONNECTION_MS. A connected listener
 *   with nothing to do is healthy.
 * - stuck: the last `concurrency` handler runs all ended by their `handlerTimeout`, with no handler
 *   settling on its own between them, so every slot has been taken by a hung handler; cleared by the
 *   next handler that settles (succeeds or fails) by itself, or once no handler ran for
 *   DISCONNECTED_PROBLEM_AFTER_MS (the hung events were dead-lettered and nothing else is waiting). A
 *   slow handler within its timeout is not stuck, nor is one that fails.
 *
 * The problem text stays the same while its cause lasts, so the host logs it once.
 */
export class ListenerHealth {
  readonly #ctx: ServiceContext;
  readonly #options: ListenerHealthOptions;
  #disconnectedSince: number | undefined;
  #cause = 'not connected yet';
  #timer: NodeJS.Timeout | undefined;
  #stableTimer: NodeJS.Timeout | undefined;
  #disconnectedProblem: string | null = null;
  #timeoutsInARow = 0;
  #stuckProblem: string | null = null;
  #idleSince: number | undefined;
  #reported: string | null = null;
  #disposed = false;

  constructor(ctx: ServiceContext, options: ListenerHealthOptions) {
    this.#ctx = ctx;
    this.#options = options;
    this.disconnected(undefined);
  }

  /** The source is reachable and consuming again; the outage ends once it stays so STABLE_CONNECTION_MS. */
  connected(): void {
    if (this.#disposed || this.#disconnectedSince === undefined || this.#stableTimer !== undefined) return;
    this.#stableTimer = setTimeout(() => {
      this.#stableTimer = undefined;
      this.#disconnectedSince = undefined;
      clearTimeout(this.#timer);
      this.#timer = undefined;
      this.#disconnectedProblem = null;
      this.#publish();
    }, STABLE_CONNECTION_MS);
    this.#stableTimer.unref();
  }

  /** The connection is gone (or an attempt failed); `cause` names why, for the problem text. */
  disconnected(cause: unknown): void {
    if (this.#disposed) return;
    clearTimeout(this.#stableTimer);
    this.#stableTimer = undefined;
    if (cause !== undefined) this.#cause = describeCause(cause);
    // While the outage goes on the problem keeps the text it was raised with: the service host logs
    // every change of a problem, and one outage is one warning.
    if (this.#disconnectedSince !== undefined) return;
    this.#disconnectedSince = Date.now();
    this.#timer = setTimeout(() => {
      this.#disconnectedProblem = this.#disconnectedText();
      this.#publish();
    }, DISCONNECTED_PROBLEM_AFTER_MS);
    this.#timer.unref();
  }

  /** A handler run ended: `timedOut` when its handlerTimeout ended it, false when it settled by itself. */
  handlerEnded(timedOut: boolean): void {
    if (!timedOut) {
      this.#timeoutsInARow = 0;
      if (this.#stuckProblem !== null) {
        this.#stuckProblem = null;
        this.#publish();
      }
      return;
    }
    this.#timeoutsInARow++;
    this.#idleSince = undefined;
    if (this.#timeoutsInARow >= this.#options.concurrency) {
      this.#stuckProblem = `stuck: ${this.#options.concurrency} handlers in a row did not settle within handlerTimeout (${this.#options.handlerTimeout} ms)`;
      this.#publish();
    }
  }

  /** Reported regularly by the listener: how many handlers run now. */
  handlersRunning(count: number): void {
    if (count > 0) {
      this.#idleSince = undefined;
      return;
    }
    const now = Date.now();
    this.#idleSince ??= now;
    if (this.#stuckProblem === null || now - this.#idleSince < DISCONNECTED_PROBLEM_AFTER_MS) return;
    this.#timeoutsInARow = 0;
    this.#stuckProblem = null;
    this.#publish();
  }

  /** Stops the timer and clears the problem: the run is over. */
  dispose(): void {
    this.#disposed = true;
    clearTimeout(this.#timer);
    clearTimeout(this.#stableTimer);
    this.#disconnectedProblem = null;
    this.#stuckProblem = null;
    this.#publish();
  }

  #disconnectedText(): string {
    const seconds = Math.round(DISCONNECTED_PROBLEM_AFTER_MS / 1000);
    return redactSecrets(`cannot reach ${this.#options.source} for ${seconds} s or more: ${this.#cause}`);
  }

  #publish(): void {
    const problem = this.#disconnectedProblem ?? this.#stuckProblem;
    if (problem === this.#reported) return;
    this.#reported = problem;
    // The service host logs it: `service:problem` (warn) once, `service:problem:cleared` (info) once.
    this.#ctx.setProblem(problem);
  }
}

function describeCause(cause: unknown): string {
  if (cause instanceof Error) {
    const code = (cause as { code?: unknown }).code;
    // A driver's code (ECONNREFUSED, 28P01) helps; our own coded errors already say everything.
    return typeof code === 'string' && !code.startsWith('STEWARD_ERR_') && !cause.message.includes(code)
      ? `${code}: ${cause.message}`
      : cause.message;
  }
  return String(cause);
}
