import cluster from 'node:cluster';
import type { Logger } from 'pino';
import type { ClusterMetrics } from '../metrics/cluster-aggregator.js';
import type { ResolvedOptions } from '../options.js';
import { ClusterPrimary } from './cluster-primary.js';
import { type RecycleResult, Recycler } from './recycler.js';
import { SurgeThenDrain } from './surge-then-drain.js';
import { WorkerPool } from './worker-pool.js';

/**
 * The primary process of `steward()`: no application code runs here (beyond the optional `primary`
 * hook). It forks and supervises the workers, recycles them surge-then-drain, and does what every
 * cluster primary does (services, status, control server, signals, shutdown).
 */
export class Supervisor extends ClusterPrimary {
  readonly pool: WorkerPool;
  readonly metrics: ClusterMetrics;
  readonly recycler: Recycler;

  constructor(options: ResolvedOptions, logger: Logger) {
    super(options, logger);
    // `this.logger`, not `logger`: it also records lifecycle events for the dashboard.
    this.pool = new WorkerPool(options, this.logger, () => this.statusUpdate());
    this.metrics = this.createMetrics(this.pool);
    const strategy = new SurgeThenDrain(this.pool);
    this.recycler = new Recycler(this.pool, strategy, options, this.logger);
    this.pool.on('fatal', (error) => {
      this.logger.fatal({ err: error, code: error.code }, `cluster:crash-loop: ${error.message}`);
      void this.shutdown('crash-loop', 1);
    });
    this.pool.on('empty', () => {
      this.logger.info({ lifetime: options.lifetime }, 'cluster:lifetime:ended');
      void this.shutdown('lifetime', 0);
    });
  }

  /**
   * Installs the signal handlers, runs the `primary` hook, starts the control server, the services and
   * then the workers. Called by `steward()`; resolves once everything is started (workers may still boot).
   */
  async start(): Promise<void> {
    this.installSignals();
    this.logger.info({ workers: this.options.workers }, 'cluster:starting');
    if (this.options.primary) await this.options.primary();
    // First, so a port in use fails the start before anything is forked; /healthz says 503 until ready.
    await this.startControl();
    // Services start first: with `placement: 'primary'` they are up before any worker is forked.
    await this.startServices();
    if (this.options.worker) this.pool.start();
  }

  /**
   * Recycles one worker (by cluster worker id) or, without an id, every worker (rolling restart), each
   * surge-then-drain within the `recycle.concurrency` budget. Resolves when those recycles ended; an
   * unknown id resolves with no result.
   */
  async recycle(workerId?: number, reason = 'manual'): Promise<RecycleResult[]> {
    if (workerId === undefined) return this.recycler.recycleAll(reason);
    const handle = this.pool.handles.find((candidate) => candidate.id === workerId);
    return handle ? [await this.recycler.recycle(handle, reason)] : [];
  }

  protected async rollingRestart(reason: string): Promise<void> {
    const results = await this.recycle(undefined, reason);
    const count = (outcome: string) => results.filter((result) => result.outcome === outcome).length;
    const fields = { recycled: count('recycled'), aborted: count('aborted'), skipped: count('skipped') };
    this.logger.info(fields, 'cluster:rolling-restart:done');
  }

  protected stopWorkers(grace: number): Promise<boolean> {
    return this.pool.stop(grace);
  }

  protected killWorkers(): void {
    this.pool.kill();
  }
}

/** Entry of the primary role. */
export async function runPrimary(options: ResolvedOptions, logger: Logger): Promise<Supervisor> {
  cluster.setupPrimary({ serialization: 'json' });
  const supervisor = new Supervisor(options, logger);
  await supervisor.start();
  return supervisor;
}
