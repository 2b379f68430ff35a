import type { Logger } from 'pino';
import { createLogger } from '../common/logger.js';
import { coerceError } from '../errors.js';
import type { ClusterMetrics } from '../metrics/cluster-aggregator.js';
import type { ResolvedOptions } from '../options.js';
import { ClusterPrimary } from '../primary/cluster-primary.js';
import { Recycler, type RecyclerOptions } from '../primary/recycler.js';
import type { WorkerHandle } from '../primary/worker-handle.js';
import { drainWorker, type ExitCause } from '../primary/worker-pool.js';
import { DrainThenRefork } from './drain-then-refork.js';
import { ThrongWorkers } from './throng-workers.js';

/**
 * The cluster primary of a throng application. throng forks `count` workers after its `master` hook and
 * forks a new one whenever a worker disconnects; this object, started from that hook, adds what throng
 * lacks: the services (in this process or the sibling), the status push to workers, recycling policies
 * with drain, manual recycles, and a shutdown that drains workers and settles services instead of
 * signalling everything at once.
 */
export class ThrongPrimary extends ClusterPrimary {
  /** The workers throng forked, as a pool view (read by metrics and the control server). */
  readonly pool: ThrongWorkers;
  readonly metrics: ClusterMetrics;
  /** Drain-then-refork: throng forks the replacement once the old worker is gone. */
  readonly recycler: Recycler;
  readonly #startedAt = Date.now();

  constructor(options: ResolvedOptions, logger: Logger, recyclerOptions: RecyclerOptions = {}) {
    super(options, logger);
    this.pool = new ThrongWorkers(options, this.logger, () => this.statusUpdate());
    this.metrics = this.createMetrics(this.pool);
    const strategy = new DrainThenRefork(this.pool);
    this.recycler = new Recycler(this.pool, strategy, options, this.logger, recyclerOptions);
    this.pool.on('worker:exit', (handle, cause) => this.#afterExit(handle, cause));
  }

  /** Runs inside throng's `master` hook, so everything here is in place before the first fork. */
  async start(): Promise<void> {
    this.installSignals();
    this.logger.info({ workers: this.options.workers, forker: 'throng' }, 'cluster:starting');
    this.pool.watch();
    if (this.options.primary) await this.options.primary();
    await this.startServices();
    await this.startControl();
  }

  /**
   * Drains and re-forks every worker, at most `recycle.concurrency` out of service at once (SIGHUP);
   * returns once they are queued, as throng's own restarts do not report back.
   */
  protected async rollingRestart(reason: string): Promise<void> {
    void this.recycler.recycleAll(reason);
  }

  #afterExit(handle: WorkerHandle, cause: ExitCause): void {
    if (this.pool.stopping) return;
    if (cause !== 'retired' && cause !== 'drain_timeout') {
      const { code, signal } = handle.exit ?? { code: null, signal: null };
      // No backoff here: throng has already forked the next worker on the disconnect.
      handle.logger.warn(
        { cause, code, signal, error: handle.crashError ?? handle.bootError ?? undefined },
        'worker:crash',
      );
    }
    // throng stops re-forking once `lifetime` has passed; with the last worker gone, the primary ends.
    if (this.pool.handles.length === 0 && Date.now() - this.#startedAt >= this.options.lifetime) {
      this.logger.info({ lifetime: this.options.lifetime }, 'cluster:lifetime:ended');
      void this.shutdown('lifetime', 0);
    }
  }

  protected async stopWorkers(grace: number): Promise<boolean> {
    // throng's own handler exits at `grace` with process.exitCode: a forced end must not look clean.
    process.exitCode = 1;
    this.pool.markStopping();
    this.recycler.dropQueued();
    const workers = this.pool.handles.map(async (handle) => {
      const exit = await drainWorker(handle, 'shutdown', grace);
      // throng signals every worker itself; one still booting dies of it before the agent can ignore
      // it. It never served a request, so nothing was cut.
      const killedBooting = handle.readyAt === null && this.options.signals.includes(exit.signal!);
      return exit.code === 0 || killedBooting;
    });
    return (await Promise.all(workers)).every(Boolean);
  }

  /**
   * throng's own signal listeners run first: they stop its re-forking and send the signal to every
   * worker, which the worker agent ignores (the drain order is what retires a worker gracefully).
   */
  protected killWorkers(): void {
    for (const handle of this.pool.handles) handle.worker.process.kill('SIGKILL');
  }
}

/** Entry of throng's `master` hook. */
export async function startThrongPrimary(options: ResolvedOptions): Promise<ThrongPrimary> {
  const primary = new ThrongPrimary(options, createLogger(options.logger, { role: 'primary' }));
  try {
    await primary.start();
  } catch (error) {
    // A rejected hook would surface as an unhandled rejection of throng's promise: end with one clear line.
    primary.logger.fatal({ err: coerceError(error) }, 'cluster:start:failed');
    process.exit(1);
  }
  return primary;
}
