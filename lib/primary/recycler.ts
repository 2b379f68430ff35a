import type { Logger } from 'pino';
import { backoffDelay, type Random } from '../common/backoff.js';
import type { ResolvedOptions } from '../options.js';
import { RecycleTriggers } from './recycle-triggers.js';
import type { ReplacementStrategy } from './replacement-strategy.js';
import type { WorkerHandle } from './worker-handle.js';
import { drainWorker, type PoolView } from './worker-pool.js';

/**
 * How one recycle ended: the old worker drained and exited (`recycled`), the replacement failed to
 * boot and the old worker kept serving (`aborted`), or there was nothing to do (`skipped`: the worker
 * was not ready, died meanwhile, or the cluster is stopping).
 */
export type RecycleOutcome = 'recycled' | 'aborted' | 'skipped';

/** One worker's recycle: which worker, why, and how it ended. */
export interface RecycleResult {
  worker: number;
  reason: string;
  outcome: RecycleOutcome;
}

interface Job {
  handle: WorkerHandle;
  reason: string;
  settle: Array<(result: RecycleResult) => void>;
}

export interface RecyclerOptions {
  /** Random source for thresholds and backoff; tests may pass a seeded one. @default Math.random */
  random?: Random;
}

/**
 * Replaces workers without losing requests, whatever asked for it (policies, SIGHUP, `recycle()`, a
 * worker's own request): one global budget of `recycle.concurrency` recycles across every trigger, the
 * rest waiting in a queue, each worker queued once. The `strategy` says what comes before the drain
 * (surge-then-drain forks the replacement first). A replacement that fails to boot aborts that
 * recycle, keeps the old worker, and pauses the queue with jittered exponential backoff; policies
 * re-trigger after the pause.
 */
export class Recycler {
  readonly #pool: PoolView;
  readonly #strategy: ReplacementStrategy;
  readonly #options: ResolvedOptions;
  readonly #logger: Logger;
  readonly #random: Random;
  readonly #triggers: RecycleTriggers;
  readonly #queue: Job[] = [];
  readonly #active = new Map<number, Job>();
  /** The workers of `#active`, as the strategy counts them. */
  readonly #recycling = new Set<WorkerHandle>();
  readonly #idleWaiters: Array<() => void> = [];
  #failures = 0;
  #pausedUntil = 0;
  #pauseTimer: NodeJS.Timeout | undefined;

  constructor(
    pool: PoolView,
    strategy: ReplacementStrategy,
    options: ResolvedOptions,
    logger: Logger,
    recyclerOptions: RecyclerOptions = {},
  ) {
    this.#pool = pool;
    this.#strategy = strategy;
    this.#options = options;
    this.#logger = logger;
    this.#random = recyclerOptions.random ?? Math.random;
    this.#triggers = new RecycleTriggers(pool, options.recycle, this.#random, (handle, reason) => {
      if (!this.#isScheduled(handle)) void this.recycle(handle, reason);
    });
    this.#triggers.logConfigured(logger, options.recycle);
    // Capacity a strategy counts in the pool (a booting replacement, a worker gone) frees room.
    pool.on('worker:ready', () => this.#pump());
    pool.on('worker:exit', () => this.#pump());
  }

  /** Recycles in progress plus queued. */
  get pending(): number {
    return this.#active.size + this.#queue.length;
  }

  /**
   * Queues one worker for recycling. Resolves when that recycle ended; a worker already queued or
   * recycling is not queued twice (the caller shares the pending outcome).
   */
  recycle(handle: WorkerHandle, reason: string): Promise<RecycleResult> {
    return new Promise((resolve) => {
      const existing = this.#active.get(handle.id) ?? this.#queue.find((job) => job.handle === handle);
      if (existing) return existing.settle.push(resolve);
      if (this.#pool.stopping || handle.state !== 'ready') {
        return resolve({ worker: handle.id, reason, outcome: 'skipped' });
      }
      this.#queue.push({ handle, reason, settle: [resolve] });
      handle.logger.debug({ reason, queued: this.#queue.length }, 'worker:recycle:queued');
      this.#pump();
    });
  }

  /** Rolling restart: queues every ready worker (those forked from now on are already fresh). */
  recycleAll(reason: string): Promise<RecycleResult[]> {
    const ready = this.#pool.handles.filter((handle) => handle.state === 'ready');
    return Promise.all(ready.map((handle) => this.recycle(handle, reason)));
  }

  /** Resolves when nothing is queued or in progress. */
  onIdle(): Promise<void> {
    if (this.pending === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  /** Drops what is queued once the pool is stopping (a shutdown replaces nothing). */
  dropQueued(): void {
    this.#pump();
  }

  #isScheduled(handle: WorkerHandle): boolean {
    return this.#active.has(handle.id) || this.#queue.some((job) => job.handle === handle);
  }

  #pump(): void {
    if (this.#pool.stopping) {
      if (this.#queue.length > 0)
        this.#logger.debug({ dropped: this.#queue.length }, 'worker:recycle:dropped');
      for (const job of this.#queue.splice(0)) this.#settle(job, 'skipped');
    } else if (!this.#paused()) {
      while (
        this.#strategy.outOfService(this.#recycling) < this.#options.recycle.concurrency &&
        this.#queue.length > 0
      )
        this.#start(this.#queue.shift()!);
    }
    if (this.pending === 0) for (const resolve of this.#idleWaiters.splice(0)) resolve();
  }

  /** True while the backoff after a failed replacement lasts; the queue resumes when it ends. */
  #paused(): boolean {
    const wait = this.#pausedUntil - Date.now();
    if (wait <= 0) return false;
    this.#pauseTimer ??= setTimeout(() => {
      this.#pauseTimer = undefined;
      this.#pump();
    }, wait).unref();
    return true;
  }

  #start(job: Job): void {
    if (job.handle.state !== 'ready') {
      this.#settle(job, 'skipped');
      return;
    }
    this.#active.set(job.handle.id, job);
    this.#recycling.add(job.handle);
    void this.#run(job).then((outcome) => {
      this.#active.delete(job.handle.id);
      this.#recycling.delete(job.handle);
      this.#settle(job, outcome);
      this.#pump();
    });
  }

  #settle(job: Job, outcome: RecycleOutcome): void {
    for (const resolve of job.settle) resolve({ worker: job.handle.id, reason: job.reason, outcome });
  }

  async #run(job: Job): Promise<RecycleOutcome> {
    const { handle: old, reason } = job;
    if (!this.#strategy.canReplace()) {
      old.logger.info({ reason, lifetime: this.#options.lifetime }, 'worker:recycle:skipped');
      return 'skipped';
    }
    old.logger.info(
      { reason, age: old.age, requests: this.#triggers.requestsOf(old), queued: this.#queue.length },
      'worker:recycle:start',
    );
    const prepared = await this.#strategy.prepare(old);
    if (this.#pool.stopping) return 'skipped';
    if (prepared.kind === 'gone') {
      old.logger.info({ reason, replacement: prepared.replacement.id }, 'worker:recycle:aborted');
      return 'skipped';
    }
    if (prepared.kind === 'failed') return this.#abort(old, prepared.replacement, reason);
    return this.#drain(old, prepared.replacement, reason);
  }

  #abort(old: WorkerHandle, replacement: WorkerHandle, reason: string): RecycleOutcome {
    this.#failures++;
    const retryIn = backoffDelay(this.#failures - 1, this.#options.restart, this.#random);
    this.#pausedUntil = Date.now() + retryIn;
    const exit = replacement.exit;
    old.logger.warn(
      {
        reason,
        replacement: replacement.id,
        error: replacement.bootError ?? undefined,
        code: exit?.code,
        signal: exit?.signal,
        failures: this.#failures,
        retryIn,
      },
      'worker:recycle:aborted',
    );
    return 'aborted';
  }

  /** The old worker drains and exits; with a replacement already serving, its boot time is reported. */
  async #drain(old: WorkerHandle, replacement: WorkerHandle | null, reason: string): Promise<RecycleOutcome> {
    this.#failures = 0;
    const age = old.age;
    const started = Date.now();
    const { drainTimeout } = this.#options.recycle;
    const exit = await drainWorker(old, reason, drainTimeout);
    const drainMs = Date.now() - started;
    this.#pool.emit('worker:recycled', old, reason, drainMs);
    const fields = {
      reason,
      age,
      requests: old.requests,
      drainMs,
      ...(replacement ? { bootMs: bootMs(replacement), replacement: replacement.id } : {}),
      code: exit.code,
      signal: exit.signal,
    };
    if (exit.code === 0) old.logger.info(fields, 'worker:recycle:done');
    else old.logger.warn({ ...fields, drainTimeout }, 'worker:recycle:done');
    return 'recycled';
  }
}

function bootMs(replacement: WorkerHandle): number | null {
  return replacement.readyAt === null ? null : replacement.readyAt - replacement.forkedAt;
}
