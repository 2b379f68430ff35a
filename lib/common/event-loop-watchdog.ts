import { EventEmitter } from 'node:events';
import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';

export interface EventLoopWatchdogOptions {
  logger: Logger;
  /** Which process this is, for the problem text and the log ("primary", "services sibling"). */
  processName: string;
  /** A timer late by at least this many ms means the event loop was blocked. @default 1000 */
  threshold?: number;
  /** How long the problem is held after a block ended, in ms. @default 10000 */
  hold?: number;
  /** Timer period in ms. @default 100 */
  tick?: number;
}

export interface EventLoopWatchdogEvents {
  /** The problem started (a block was seen) or ended (null: no block for `hold` ms). */
  change: [string | null];
}

/**
 * Sees a blocked event loop after the fact: a short timer that fires late by `threshold` ms or more
 * means nothing else could run meanwhile, not the status pushes, not the control server, and in the
 * primary not even the hand-over of new connections to the workers. While the loop is blocked nothing
 * can report it (the workers see the pushes stop); once it runs again the block is logged and reported
 * as a problem for `hold` ms, so a scrape or a health check made after the block still sees it.
 */
export class EventLoopWatchdog extends EventEmitter<EventLoopWatchdogEvents> {
  readonly #options: Required<EventLoopWatchdogOptions>;
  #timer: NodeJS.Timeout | undefined;
  #holdTimer: NodeJS.Timeout | undefined;
  #last = 0;
  #problem: string | null = null;

  constructor(options: EventLoopWatchdogOptions) {
    super();
    this.#options = { threshold: 1_000, hold: 10_000, tick: 100, ...options };
  }

  /** Why the event loop cannot be trusted right now, or null. */
  get problem(): string | null {
    return this.#problem;
  }

  start(): this {
    if (this.#timer) return this;
    this.#last = performance.now();
    this.#timer = setInterval(() => this.#onTick(), this.#options.tick);
    // Watching must never keep a process alive that has nothing else to do.
    this.#timer.unref();
    return this;
  }

  stop(): void {
    clearInterval(this.#timer);
    clearTimeout(this.#holdTimer);
    this.#timer = undefined;
    this.#holdTimer = undefined;
  }

  #onTick(): void {
    const now = performance.now();
    const blockedMs = Math.round(now - this.#last - this.#options.tick);
    this.#last = now;
    if (blockedMs < this.#options.threshold) return;
    const { logger, processName, hold } = this.#options;
    logger.warn({ blockedMs, holdMs: hold, process: processName }, 'event-loop:blocked');
    this.#set(`the event loop of the ${processName} was blocked for ${(blockedMs / 1000).toFixed(1)} s`);
    clearTimeout(this.#holdTimer);
    this.#holdTimer = setTimeout(() => {
      this.#holdTimer = undefined;
      logger.info({ process: processName }, 'event-loop:recovered');
      this.#set(null);
    }, hold);
    this.#holdTimer.unref();
  }

  #set(problem: string | null): void {
    if (this.#problem === problem) return;
    this.#problem = problem;
    this.emit('change', problem);
  }
}
