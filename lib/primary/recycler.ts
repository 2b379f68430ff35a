import type { Logger } from 'pino';
import { backoffDelay, type Random } from '../common/backoff.js';
import type { ResolvedOptions } from '../options.js';
import { createPolicies, type RecyclePolicy, type WorkerLimit } from './recycle-policies/index.js';
import type { WorkerHandle } from './worker-handle.js';
import type { WorkerPool } from './worker-pool.js';

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

/** A worker's own request for recycling that is not a policy of ours (throng's `disconnect()`). */
const WORKER_REQUEST = 'worker-request';

interface Job {
  handle: WorkerHandle;
  reason: string;
  settle: Array<(result: RecycleResult) => void>;
}

/** What the recycler keeps per live worker: its drawn limits and whether it reported its request limit. */
interface Tracked {
  limits: WorkerLimit[];
  requestLimit: number | undefined;
  requestLimitReached: boolean;
}

export interface RecyclerOptions {
  /** Random source for thresholds and backoff; tests may pass a seeded one. @default Math.random */
  random?: Random;
}

/**
 * Replaces workers without losing capacity or requests: surge-then-drain (fork the replacement, wait
 * until it is ready, then drain the old worker), with one global budget of `recycle.concurrency`
 * recycles in progress across every trigger (policies, SIGHUP, `recycle()`, a worker's own request).
 * The rest wait in a queue. A replacement that fails to boot aborts that recycle, keeps the old worker,
 * and pauses the queue with jittered exponential backoff; policies re-trigger after the pause.
 */
export class Recycler {
  readonly #pool: WorkerPool;
  readonly #options: ResolvedOptions;
  readonly #logger: Logger;
  readonly #random: Random;
  readonly #policies: RecyclePolicy[];
  readonly #tracked = new Map<number, Tracked>();
  readonly #queue: Job[] = [];
  readonly #active = new Map<number, Job>();
  readonly #idleWaiters: Array<() => void> = [];
  #failures = 0;
  #pausedUntil = 0;
  #pauseTimer: NodeJS.Timeout | undefined;

  constructor(
    pool: WorkerPool,
    options: ResolvedOptions,
    logger: Logger,
    recyclerOptions: RecyclerOptions = {},
  ) {
    this.#pool = pool;
    this.#options = options;
    this.#logger = logger;
    this.#random = recyclerOptions.random ?? Math.random;
    this.#policies = createPolicies(options.recycle);
    if (this.#policies.length > 0) {
      const { concurrency, drainTimeout, minLifetime } = options.recycle;
      const policies = this.#policies.map((policy) => policy.name);
      this.#logger.info({ policies, concurrency, drainTimeout, minLifetime }, 'cluster:recycle:configured');
    }
    pool.on('worker:forked', (handle) => this.#attach(handle));
    pool.on('worker:ready', (handle) => this.#sendRequestLimit(handle));
    pool.on('worker:exit', (handle) => this.#tracked.delete(handle.id));
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

  #attach(handle: WorkerHandle): void {
    const limits = this.#policies.map((policy) => policy.forWorker(this.#random));
    const requestLimit = limits.find((limit) => limit.limits.maxRequests !== undefined)?.limits.maxRequests;
    this.#tracked.set(handle.id, { limits, requestLimit, requestLimitReached: false });
    if (limits.length > 0) {
      handle.logger.debug(
        { limits: Object.assign({}, ...limits.map((l) => l.limits)) },
        'worker:recycle:limits',
      );
    }
    handle.channel.on('worker:heartbeat', () => this.#evaluate(handle));
    // Only ever the worker on whose channel the request arrived: a worker cannot name another one.
    handle.channel.on('worker:recycle-request', (message) => this.#onWorkerRequest(handle, message.reason));
  }

  /** Sent once ready, when the agent listens for it; a worker past the limit already answers at once. */
  #sendRequestLimit(handle: WorkerHandle): void {
    const maxRequests = this.#tracked.get(handle.id)?.requestLimit;
    if (maxRequests !== undefined) handle.channel.send('worker:recycle-limit', { maxRequests });
  }

  #onWorkerRequest(handle: WorkerHandle, reason: string): void {
    const tracked = this.#tracked.get(handle.id);
    if (reason === 'max-requests' && tracked?.requestLimit !== undefined) {
      tracked.requestLimitReached = true;
      this.#evaluate(handle);
      return;
    }
    handle.logger.info({ reason }, 'worker:recycle:requested');
    void this.recycle(handle, WORKER_REQUEST);
  }

  /** The last heartbeat's count, or the drawn limit when the worker reported crossing it since. */
  #requestsOf(handle: WorkerHandle): number {
    const tracked = this.#tracked.get(handle.id);
    const reported = tracked?.requestLimitReached ? (tracked.requestLimit ?? 0) : 0;
    return Math.max(handle.requests, reported);
  }

  /** Runs every limit on the latest figures (all of them: the memory limit counts consecutive samples). */
  #evaluate(handle: WorkerHandle): void {
    const tracked = this.#tracked.get(handle.id);
    if (!tracked || tracked.limits.length === 0 || handle.state !== 'ready') return;
    const sample = {
      age: handle.age,
      requests: this.#requestsOf(handle),
      rss: handle.rss,
      heapUsed: handle.heapUsed,
    };
    const reasons = tracked.limits.map((limit) => limit.check(sample));
    const reason = reasons.find((candidate) => candidate !== null);
    if (!reason || sample.age < this.#options.recycle.minLifetime) return;
    if (this.#isScheduled(handle)) return;
    void this.recycle(handle, reason);
  }

  #isScheduled(handle: WorkerHandle): boolean {
    return this.#active.has(handle.id) || this.#queue.some((job) => job.handle === handle);
  }

  #pump(): void {
    if (this.#pool.stopping) {
      for (const job of this.#queue.splice(0)) this.#settle(job, 'skipped');
      return;
    }
    const wait = this.#pausedUntil - Date.now();
    if (wait > 0) {
      this.#pauseTimer ??= setTimeout(() => {
        this.#pauseTimer = undefined;
        this.#pump();
      }, wait).unref();
      return;
    }
    while (this.#active.size < this.#options.recycle.concurrency && this.#queue.length > 0) {
      const job = this.#queue.shift()!;
      if (job.handle.state !== 'ready') {
        this.#settle(job, 'skipped');
        continue;
      }
      this.#active.set(job.handle.id, job);
      void this.#run(job).then((outcome) => {
        this.#active.delete(job.handle.id);
        this.#settle(job, outcome);
        this.#pump();
      });
    }
    if (this.pending === 0) for (const resolve of this.#idleWaiters.splice(0)) resolve();
  }

  #settle(job: Job, outcome: RecycleOutcome): void {
    for (const resolve of job.settle) resolve({ worker: job.handle.id, reason: job.reason, outcome });
  }

  /** Surge-then-drain for one worker. */
  async #run(job: Job): Promise<RecycleOutcome> {
    const { handle: old, reason } = job;
    if (!this.#pool.forking) {
      // Past `lifetime` no worker is forked: a recycle would only take capacity away.
      old.logger.info({ reason, lifetime: this.#options.lifetime }, 'worker:recycle:skipped');
      return 'skipped';
    }
    old.logger.info(
      { reason, age: old.age, requests: this.#requestsOf(old), queued: this.#queue.length },
      'worker:recycle:start',
    );
    const replacement = this.#pool.fork();
    const booted = await Promise.race([
      replacement.whenReady().then(() => 'ready' as const),
      replacement.exited.then(() => 'failed' as const),
      old.exited.then(() => 'gone' as const),
    ]);
    if (this.#pool.stopping) return 'skipped';
    if (booted === 'gone') {
      // The old worker died on its own; the replacement simply takes its place.
      old.logger.info({ reason, replacement: replacement.id }, 'worker:recycle:aborted');
      return 'skipped';
    }
    if (booted === 'failed') return this.#abort(old, replacement, reason);
    return this.#drain(old, replacement, reason);
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

  async #drain(old: WorkerHandle, replacement: WorkerHandle, reason: string): Promise<RecycleOutcome> {
    this.#failures = 0;
    const age = old.age;
    const bootMs = replacement.readyAt === null ? null : replacement.readyAt - replacement.forkedAt;
    const started = Date.now();
    const exit = await this.#pool.drain(old, reason, this.#options.recycle.drainTimeout);
    const drainMs = Date.now() - started;
    this.#pool.emit('worker:recycled', old, reason, drainMs);
    const fields = {
      reason,
      age,
      requests: old.requests,
      drainMs,
      bootMs,
      replacement: replacement.id,
      code: exit.code,
      signal: exit.signal,
    };
    if (exit.code === 0) old.logger.info(fields, 'worker:recycle:done');
    else
      old.logger.warn({ ...fields, drainTimeout: this.#options.recycle.drainTimeout }, 'worker:recycle:done');
    return 'recycled';
  }
}
