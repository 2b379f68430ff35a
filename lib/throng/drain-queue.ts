import type { Logger } from 'pino';
import type { WorkerHandle } from '../primary/worker-handle.js';
import { drainWorker, type PoolView } from '../primary/worker-pool.js';

/**
 * Drain-then-refork recycling for a primary that does not fork its own workers (throng forks a new one
 * when an old one disconnects). A worker leaves only while fewer than `concurrency` workers are out of
 * service, counting both the draining ones and the booting replacements: with `concurrency: 1` at most
 * one worker's capacity is missing at any moment.
 */
export class DrainQueue {
  readonly #pool: PoolView;
  readonly #concurrency: number;
  readonly #drainTimeout: number;
  readonly #logger: Logger;
  readonly #waiting: { handle: WorkerHandle; reason: string }[] = [];

  constructor(pool: PoolView, options: { concurrency: number; drainTimeout: number; logger: Logger }) {
    this.#pool = pool;
    this.#concurrency = options.concurrency;
    this.#drainTimeout = options.drainTimeout;
    this.#logger = options.logger;
  }

  /** Queues a ready worker for retirement; a worker already queued or draining is left as it is. */
  request(handle: WorkerHandle, reason: string): void {
    if (this.#pool.stopping || handle.state !== 'ready') return;
    if (this.#waiting.some((entry) => entry.handle === handle)) return;
    this.#waiting.push({ handle, reason });
    handle.logger.debug({ reason, queued: this.#waiting.length }, 'worker:recycle:queued');
    this.next();
  }

  /** Starts queued drains while capacity allows; called again whenever a worker becomes ready or exits. */
  next(): void {
    if (this.#pool.stopping) {
      if (this.#waiting.length > 0)
        this.#logger.debug({ dropped: this.#waiting.length }, 'worker:recycle:dropped');
      this.#waiting.length = 0;
      return;
    }
    while (this.#waiting.length > 0 && this.#outOfService() < this.#concurrency) {
      const { handle, reason } = this.#waiting.shift()!;
      if (handle.state === 'ready') void this.#recycle(handle, reason);
    }
  }

  async #recycle(handle: WorkerHandle, reason: string): Promise<void> {
    const { age, requests } = handle;
    handle.logger.info({ reason, age, requests, queued: this.#waiting.length }, 'worker:recycle:start');
    const started = Date.now();
    const exit = await drainWorker(handle, reason, this.#drainTimeout);
    const drainMs = Date.now() - started;
    // Once drained, throng forks the replacement (it re-forks on every disconnect).
    this.#pool.emit('worker:recycled', handle, reason, drainMs);
    const fields = { reason, age, requests: handle.requests, drainMs, code: exit.code, signal: exit.signal };
    if (exit.code === 0) handle.logger.info(fields, 'worker:recycle:done');
    else handle.logger.warn({ ...fields, drainTimeout: this.#drainTimeout }, 'worker:recycle:done');
  }

  #outOfService(): number {
    let count = 0;
    for (const handle of this.#pool.handles)
      if (handle.state === 'draining' || handle.state === 'booting') count++;
    return count;
  }
}
