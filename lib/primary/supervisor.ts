import cluster from 'node:cluster';
import type { Logger } from 'pino';
import type { StatusUpdate } from '../common/messages.js';
import { coerceError } from '../errors.js';
import type { ClusterMetrics } from '../metrics/cluster-aggregator.js';
import { createClusterMetrics } from '../metrics/cluster-sources.js';
import type { ResolvedOptions } from '../options.js';
import { applyStatusUpdate } from '../worker/cluster-status.js';
import { ControlServer } from './control-server.js';
import { type RecycleResult, Recycler } from './recycler.js';
import { createServicesSupervisor, type ServicesSupervisor } from './services-supervisor.js';
import { WorkerPool } from './worker-pool.js';

/**
 * The primary process: no application code runs here (beyond the optional `primary` hook). It owns the
 * worker pool, the services host, the control server, and the process signals.
 */
export class Supervisor {
  readonly options: ResolvedOptions;
  readonly logger: Logger;
  readonly pool: WorkerPool;
  /** Cluster-wide metrics, served by the control server's `/metrics`. */
  readonly metrics: ClusterMetrics;
  #control: ControlServer | undefined;
  readonly recycler: Recycler;
  /** The services host (in this process or the sibling); undefined for a web-only server. */
  services: ServicesSupervisor | undefined;
  #statusTimer: NodeJS.Timeout | undefined;
  #shutdown: Promise<never> | undefined;
  #signalsSeen = 0;

  constructor(options: ResolvedOptions, logger: Logger) {
    this.options = options;
    this.logger = logger;
    this.pool = new WorkerPool(options, logger, () => this.statusUpdate());
    this.metrics = createClusterMetrics(this.pool, options, logger, () => this.services?.channel);
    this.recycler = new Recycler(this.pool, options, logger);
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
   * Installs the signal handlers, runs the `primary` hook, starts the services, the control server and
   * then the workers. Called by `steward()`; resolves once everything is started (workers may still boot).
   */
  async start(): Promise<void> {
    this.#installSignals();
    this.logger.info({ workers: this.options.workers, pid: process.pid }, 'cluster:starting');
    if (this.options.primary) await this.options.primary();
    // First, so a port in use fails the start before anything is forked; /healthz says 503 until ready.
    if (this.options.control)
      this.#control = await ControlServer.start(this, this.options.control, this.logger);
    // Services start first: with `placement: 'primary'` they are up before any worker is forked.
    if (this.options.services) await this.#startServices();
    if (this.options.worker) this.pool.start();
  }

  async #startServices(): Promise<void> {
    const services = createServicesSupervisor(this.options, this.logger);
    this.services = services;
    services.on('change', () => this.#publishStatus());
    services.on('sibling:forked', (channel) => this.metrics.acceptFinalReport(channel, channel));
    this.#statusTimer = setInterval(() => this.#publishStatus(), this.options.statusInterval);
    this.#statusTimer.unref();
    await services.start();
  }

  /** Pushes the services status to every worker (and to `status()` in this process). */
  #publishStatus(): void {
    applyStatusUpdate(this.statusUpdate(), true, this.options.statusInterval * 3);
    this.pool.broadcastStatus();
  }

  /** The services status pushed to workers; null until a services host exists. */
  statusUpdate(): StatusUpdate {
    return { services: this.services?.snapshot() ?? null, sentAt: Date.now() };
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

  /** Graceful stop of everything; exits the process with `code` (1 if any step failed). */
  shutdown(reason: string, code = 0): Promise<never> {
    this.#shutdown ??= this.#runShutdown(reason, code);
    return this.#shutdown;
  }

  async #runShutdown(reason: string, code: number): Promise<never> {
    const started = Date.now();
    this.logger.info({ reason, grace: this.options.grace }, 'cluster:shutdown:start');
    clearInterval(this.#statusTimer);
    // Workers drain while services settle their in-flight events; either failing makes the exit code 1.
    const steps = await Promise.allSettled([
      this.pool.stop(this.options.grace),
      this.services?.stop(this.options.grace) ?? true,
    ]);
    let clean = true;
    for (const step of steps) {
      if (step.status === 'fulfilled') clean &&= step.value;
      else {
        clean = false;
        this.logger.error({ err: coerceError(step.reason) }, 'cluster:shutdown:error');
      }
    }
    const exitCode = code !== 0 ? code : clean ? 0 : 1;
    this.logger.info({ reason, ms: Date.now() - started, clean, exitCode }, 'cluster:shutdown:done');
    await this.#control?.close();
    process.exit(exitCode);
  }

  #installSignals(): void {
    for (const signal of this.options.signals) {
      process.on(signal, () => {
        this.#signalsSeen++;
        if (this.#signalsSeen > 1) {
          this.logger.warn({ signal }, 'cluster:shutdown:forced');
          this.pool.kill();
          this.services?.kill();
          process.exit(1);
        }
        void this.shutdown(signal, 0);
      });
    }
    process.on('SIGHUP', () => {
      const workers = this.pool.serving.length;
      this.logger.info({ signal: 'SIGHUP', workers }, 'cluster:rolling-restart:start');
      void this.recycle(undefined, 'rolling-restart').then((results) => {
        const count = (outcome: string) => results.filter((result) => result.outcome === outcome).length;
        const fields = { recycled: count('recycled'), aborted: count('aborted'), skipped: count('skipped') };
        this.logger.info(fields, 'cluster:rolling-restart:done');
      });
    });
    // Restarts the services host only; workers keep serving.
    process.on('SIGUSR2', () => {
      if (!this.services) {
        this.logger.warn({ signal: 'SIGUSR2' }, 'services:restart:none');
        return;
      }
      void this.services.restart('SIGUSR2');
    });
  }
}

/** Entry of the primary role. */
export async function runPrimary(options: ResolvedOptions, logger: Logger): Promise<Supervisor> {
  cluster.setupPrimary({ serialization: 'json' });
  const supervisor = new Supervisor(options, logger);
  await supervisor.start();
  return supervisor;
}
