import type { Logger } from 'pino';
import type { WorkerExit, WorkerHandle } from '../primary/worker-handle.js';

/**
 * Drain-then-refork recycling for a primary that does not fork its own workers (throng forks a new one
 * when an old one disconnects). A worker leaves only while fewer than `concurrency` workers are out of
 * service, counting both the draining ones and the booting replacements: with `concurrency: 1` at most
 * one worker's capacity is missing at any moment.
 */
export class DrainQueue {
  readonly #concurrency: number;
  readonly #drainTimeout: number;
  readonly #logger: Logger;
  readonly #live: () => Iterable<WorkerHandle>;
  readonly #waiting: { handle: WorkerHandle; reason: string }[] = [];
  readonly #drainStarted = new WeakMap<WorkerHandle, number>();
  #closed = false;

  constructor(options: {
    concurrency: number;
    drainTimeout: number;
    logger: Logger;
    live: () => Iterable<WorkerHandle>;
  }) {
    this.#concurrency = options.concurrency;
    this.#drainTimeout = options.drainTimeout;
    this.#logger = options.logger;
    this.#live = options.live;
  }

  /** Queues a ready worker for retirement; a worker already queued or draining is left as it is. */
  request(handle: WorkerHandle, reason: string): void {
    if (this.#closed || handle.state !== 'ready') return;
    if (this.#waiting.some((entry) => entry.handle === handle)) return;
    this.#waiting.push({ handle, reason });
    this.next();
  }

  /** Starts queued drains while capacity allows; called again whenever a worker becomes ready or exits. */
  next(): void {
    while (!this.#closed && this.#waiting.length > 0 && this.#outOfService() < this.#concurrency) {
      const { handle, reason } = this.#waiting.shift()!;
      if (handle.state !== 'ready') continue;
      handle.logger.info({ reason, age: handle.age, requests: handle.requests }, 'worker:recycle:start');
      void this.drain(handle, reason, this.#drainTimeout).then((exit) => {
        const drainMs = Date.now() - (this.#drainStarted.get(handle) ?? Date.now());
        if (exit.code === 0) handle.logger.info({ reason, drainMs }, 'worker:recycle:done');
      });
    }
  }

  /**
   * Tells a worker to stop accepting, finish in-flight requests with `Connection: close` and exit; it
   * is killed if it is still there `timeout` ms (plus a second) later. Resolves when it has exited.
   */
  drain(handle: WorkerHandle, reason: string, timeout: number): Promise<WorkerExit> {
    if (handle.state === 'dead' || handle.state === 'draining') return handle.exited;
    handle.retireReason = reason;
    this.#drainStarted.set(handle, Date.now());
    handle.transition('draining', { reason });
    handle.channel.send('worker:drain', { timeout, reason });
    // The worker enforces the deadline itself; this covers a worker whose event loop is blocked.
    const killTimer = setTimeout(() => {
      handle.logger.warn({ reason, timeout }, 'worker:drain:kill');
      handle.worker.process.kill('SIGKILL');
    }, timeout + 1_000);
    void handle.exited.then(() => clearTimeout(killTimer));
    return handle.exited;
  }

  /** No more recycles (shutdown): queued workers are left to the shutdown drain. */
  close(): void {
    this.#closed = true;
    if (this.#waiting.length > 0)
      this.#logger.debug({ dropped: this.#waiting.length }, 'worker:recycle:dropped');
    this.#waiting.length = 0;
  }

  #outOfService(): number {
    let count = 0;
    for (const handle of this.#live()) if (handle.state === 'draining' || handle.state === 'booting') count++;
    return count;
  }
}
