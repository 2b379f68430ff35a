import cluster, { type Worker } from 'node:cluster';
import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import type { StatusUpdate } from '../common/messages.js';
import { StewardError } from '../errors.js';
import type { ResolvedOptions } from '../options.js';
import { workerSettingsEnv } from '../worker/worker-settings.js';
import { CrashBackoff } from './child-handle.js';
import { type WorkerExit, WorkerHandle } from './worker-handle.js';

/** Why a worker left, as counted in `steward_worker_exits_total{cause}`. */
export type ExitCause = 'retired' | 'crash' | 'boot_failure' | 'boot_timeout' | 'drain_timeout' | 'shutdown';

export interface WorkerPoolEvents {
  'worker:forked': [WorkerHandle];
  'worker:ready': [WorkerHandle];
  'worker:exit': [WorkerHandle, ExitCause];
  /** A recycle finished: the old worker drained and exited; reason is the policy or trigger name. */
  'worker:recycled': [WorkerHandle, string, number];
  /** Workers crash faster than the restart intensity allows and none is ready: the primary must stop. */
  fatal: [StewardError];
  /** `lifetime` has passed and the last worker is gone. */
  empty: [];
}

/**
 * What metrics and the control server read of a set of workers: this pool, or the view the throng
 * adapter keeps of the workers throng forks.
 */
export interface PoolView extends EventEmitter<WorkerPoolEvents> {
  readonly handles: WorkerHandle[];
  readonly stopping: boolean;
  /** Sends the latest services status to every live worker. */
  broadcastStatus(): void;
}

/**
 * Retires a worker: it stops accepting, finishes in-flight requests with `Connection: close` and
 * exits; it is killed after `timeout` ms. Resolves when it has exited.
 */
export function drainWorker(handle: WorkerHandle, reason: string, timeout: number): Promise<WorkerExit> {
  if (handle.state === 'dead') return handle.exited;
  if (handle.state !== 'draining') {
    const booting = handle.state === 'booting';
    handle.retire(reason, { reason });
    handle.channel.send('worker:drain', { timeout, reason });
    // A worker still loading its modules loses the message; it is repeated once its agent listens (a
    // second drain is ignored), so a shutdown during a recycle never waits for the kill.
    if (booting)
      handle.channel.on('worker:hello', () => handle.channel.send('worker:drain', { timeout, reason }));
    handle.killAfter(timeout + 1_000, 'worker:drain:kill', { reason, timeout });
  }
  return handle.exited;
}

/**
 * Takes charge of a freshly forked worker, whoever forked it: logs `worker:booting`, sends it the
 * services status once its agent listens (not at fork: it could not receive it yet), and kills it if
 * it is not ready within `bootTimeout` (its exit is then a `boot_timeout`).
 */
export function adoptWorker(
  worker: Worker,
  logger: Logger,
  bootTimeout: number,
  statusUpdate: () => StatusUpdate,
): WorkerHandle {
  const handle = new WorkerHandle(worker, logger);
  handle.logger.info({ state: 'booting' }, 'worker:booting');
  handle.channel.on('worker:hello', () => handle.channel.send('status:update', statusUpdate()));
  const bootTimer = setTimeout(() => {
    if (handle.state !== 'booting') return;
    handle.bootError = {
      name: 'StewardError',
      code: 'STEWARD_ERR_BOOT_TIMEOUT',
      message: `worker ${handle.id} was not ready within bootTimeout (${bootTimeout} ms)`,
    };
    handle.process.kill('SIGKILL');
  }, bootTimeout);
  void handle.whenReady().then(() => clearTimeout(bootTimer));
  void handle.exited.then(() => clearTimeout(bootTimer));
  return handle;
}

/** Why a worker left, from what the primary knew of it when it exited. */
export function exitCause(handle: WorkerHandle, exit: WorkerExit): ExitCause {
  if (handle.retireReason === 'shutdown') return 'shutdown';
  if (handle.retireReason !== null) return exit.code === 0 ? 'retired' : 'drain_timeout';
  if (handle.bootError?.code === 'STEWARD_ERR_BOOT_TIMEOUT') return 'boot_timeout';
  if (handle.readyAt === null) return 'boot_failure';
  return 'crash';
}

/**
 * Keeps `workers` HTTP workers alive: forks them, re-forks crashed ones with jittered backoff, stops
 * a crash loop, and drains workers on request. Recycling policies and shutdown build on `fork` and
 * `drain`.
 */
export class WorkerPool extends EventEmitter<WorkerPoolEvents> {
  readonly #options: ResolvedOptions;
  readonly #logger: Logger;
  readonly #handles = new Map<number, WorkerHandle>();
  readonly #crashes: CrashBackoff;
  readonly #startedAt = Date.now();
  /** What each worker needs of the resolved options, in its environment (see `worker-settings.ts`). */
  readonly #workerSettings: Record<string, string>;
  #statusUpdate: () => StatusUpdate;
  #scheduledForks = 0;
  #stopping = false;
  #firstCrashCause: string | null = null;
  /** Workers that failed to boot since one was last ready (whatever the worker count and the period). */
  #bootFailuresInARow = 0;

  constructor(options: ResolvedOptions, logger: Logger, statusUpdate: () => StatusUpdate) {
    super();
    this.#options = options;
    this.#logger = logger;
    this.#statusUpdate = statusUpdate;
    this.#crashes = new CrashBackoff(options.restart, 0);
    this.#workerSettings = workerSettingsEnv(options);
  }

  /** All known workers, oldest first (dead ones are removed on exit). */
  get handles(): WorkerHandle[] {
    return [...this.#handles.values()];
  }

  /** Workers that count toward capacity: booting or ready. */
  get serving(): WorkerHandle[] {
    return this.handles.filter((handle) => handle.state === 'booting' || handle.state === 'ready');
  }

  get stopping(): boolean {
    return this.#stopping;
  }

  start(): void {
    for (let i = 0; i < this.#options.workers; i++) this.fork();
  }

  /** Forks one worker; it counts as capacity at once and is killed if not ready within `bootTimeout`. */
  fork(): WorkerHandle {
    const worker = cluster.fork({ STEWARD_WORKER: '1', ...this.#workerSettings });
    const handle = adoptWorker(worker, this.#logger, this.#options.bootTimeout, this.#statusUpdate);
    this.#handles.set(handle.id, handle);
    void handle.whenReady().then(() => {
      this.#bootFailuresInARow = 0;
      this.emit('worker:ready', handle);
    });
    void handle.exited.then((exit) => this.#onExit(handle, exit));
    this.emit('worker:forked', handle);
    return handle;
  }

  /**
   * Retires a worker: it stops accepting, finishes in-flight requests with `Connection: close` and
   * exits; it is killed after `timeout` ms. Resolves when it has exited.
   */
  drain(handle: WorkerHandle, reason: string, timeout: number): Promise<WorkerExit> {
    return drainWorker(handle, reason, timeout);
  }

  /** Sends the latest services status to every live worker. */
  broadcastStatus(): void {
    const update = this.#statusUpdate();
    for (const handle of this.#handles.values()) {
      if (handle.state !== 'dead') handle.channel.send('status:update', update);
    }
  }

  /** Drains every worker at once; resolves true when all exited cleanly within `grace`. */
  async stop(grace: number): Promise<boolean> {
    this.#stopping = true;
    const exits = await Promise.all(this.handles.map((handle) => this.drain(handle, 'shutdown', grace)));
    return exits.every((exit) => exit.code === 0);
  }

  /** Kills every worker at once (second SIGINT). */
  kill(): void {
    this.#stopping = true;
    for (const handle of this.#handles.values()) handle.worker.process.kill('SIGKILL');
  }

  #onExit(handle: WorkerHandle, exit: WorkerExit): void {
    this.#handles.delete(handle.id);
    const cause = exitCause(handle, exit);
    this.emit('worker:exit', handle, cause);
    if (this.#stopping) return;
    if (cause !== 'retired' && cause !== 'drain_timeout') this.#recordCrash(handle, exit, cause);
    this.#replenish();
  }

  #recordCrash(handle: WorkerHandle, exit: WorkerExit, cause: ExitCause): void {
    const error = handle.crashError ?? handle.bootError ?? undefined;
    const exited = `exited with ${exit.signal ? `signal ${exit.signal}` : `code ${exit.code}`}`;
    const description = handle.bootError
      ? `${handle.bootError.name}: ${handle.bootError.message}`
      : handle.crashError
        ? `${exited} (${handle.crashError.name}: ${handle.crashError.message})`
        : exited;
    this.#firstCrashCause ??= description;
    const bootFailure = cause === 'boot_failure' || cause === 'boot_timeout';
    this.#bootFailuresInARow = bootFailure ? this.#bootFailuresInARow + 1 : 0;
    // Too many crashes in the period, or a worker that never becomes ready: with few workers and a long
    // bootTimeout the boot failures alone are too slow to exceed the intensity within its period.
    const neverReady = this.#bootFailuresInARow >= this.#options.restart.intensity;
    const tooMany = this.#crashes.record() || neverReady;
    handle.logger.warn(
      {
        cause,
        code: exit.code,
        signal: exit.signal,
        error,
        ...(bootFailure ? { bootFailuresInARow: this.#bootFailuresInARow } : {}),
      },
      'worker:crash',
    );
    if (!tooMany) return;
    if (this.serving.some((candidate) => candidate.state === 'ready')) {
      this.#logger.warn({ crashes: this.#crashes.recent }, 'worker:crash-loop:degraded');
      return;
    }
    this.#stopping = true;
    const { intensity, period } = this.#options.restart;
    const what = neverReady
      ? `${this.#bootFailuresInARow} workers in a row failed to become ready`
      : `Workers crashed more than ${intensity} times in ${period} ms with none ready`;
    this.emit(
      'fatal',
      new StewardError('STEWARD_ERR_CRASH_LOOP', `${what}; first cause: ${this.#firstCrashCause}`, {
        details: { firstCause: this.#firstCrashCause, lastCause: description },
      }),
    );
  }

  /** False once stopping or past `lifetime` (throng's "how long to keep forking"): no new worker then. */
  get forking(): boolean {
    return !this.#stopping && Date.now() - this.#startedAt <= this.#options.lifetime;
  }

  /** Forks what is missing from the configured count, after a backoff when workers are crashing. */
  #replenish(): void {
    if (this.#stopping) return;
    if (!this.forking) {
      if (this.#handles.size === 0) this.emit('empty');
      return;
    }
    const missing = this.#options.workers - this.serving.length - this.#scheduledForks;
    if (missing <= 0) return;
    for (let i = 0; i < missing; i++) {
      this.#scheduledForks++;
      const wait = this.#crashes.delay();
      setTimeout(() => {
        this.#scheduledForks--;
        if (!this.#stopping && this.serving.length < this.#options.workers) this.fork();
      }, wait);
    }
  }
}
