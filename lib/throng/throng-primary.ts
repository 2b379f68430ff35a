import type { Logger } from 'pino';
import { createLogger } from '../common/logger.js';
import type { StatusUpdate } from '../common/messages.js';
import { coerceError } from '../errors.js';
import type { ClusterMetrics } from '../metrics/cluster-aggregator.js';
import { createClusterMetrics } from '../metrics/cluster-sources.js';
import type { ResolvedOptions } from '../options.js';
import { ControlServer } from '../primary/control-server.js';
import { createPolicies, type RecyclePolicy, type WorkerLimit } from '../primary/recycle-policies/index.js';
import { createServicesSupervisor, type ServicesSupervisor } from '../primary/services-supervisor.js';
import type { WorkerHandle } from '../primary/worker-handle.js';
import { drainWorker, type ExitCause } from '../primary/worker-pool.js';
import { applyStatusUpdate } from '../worker/cluster-status.js';
import { DrainQueue } from './drain-queue.js';
import { ThrongWorkers } from './throng-workers.js';

/**
 * The cluster primary of a throng application. throng forks `count` workers after its `master` hook and
 * forks a new one whenever a worker disconnects; this object, started from that hook, adds what throng
 * lacks: the services (in this process or the sibling), the status push to workers, recycling policies
 * with drain, manual recycles, and a shutdown that drains workers and settles services instead of
 * signalling everything at once.
 */
export class ThrongPrimary {
  readonly options: ResolvedOptions;
  readonly logger: Logger;
  /** The workers throng forked, as a pool view (read by metrics and the control server). */
  readonly pool: ThrongWorkers;
  /** Cluster-wide metrics, served by the control server's `/metrics`. */
  readonly metrics: ClusterMetrics;
  /** The services host (in this process or the sibling); undefined for a web-only server. */
  services: ServicesSupervisor | undefined;
  readonly #policies: RecyclePolicy[];
  readonly #queue: DrainQueue;
  readonly #startedAt = Date.now();
  #control: ControlServer | undefined;
  #statusTimer: NodeJS.Timeout | undefined;
  #shutdown: Promise<never> | undefined;
  #signalsSeen = 0;

  constructor(options: ResolvedOptions, logger: Logger) {
    this.options = options;
    this.logger = logger;
    this.pool = new ThrongWorkers(options, logger, () => this.statusUpdate());
    this.metrics = createClusterMetrics(this.pool, options, logger, () => this.services?.channel);
    this.#policies = createPolicies(options.recycle);
    this.#queue = new DrainQueue(this.pool, {
      concurrency: options.recycle.concurrency,
      drainTimeout: options.recycle.drainTimeout,
      logger,
    });
    this.pool.on('worker:forked', (handle) => this.#attachLimits(handle));
    this.pool.on('worker:ready', () => this.#queue.next());
    this.pool.on('worker:exit', (handle, cause) => this.#afterExit(handle, cause));
  }

  /** Runs inside throng's `master` hook, so everything here is in place before the first fork. */
  async start(): Promise<void> {
    this.#installSignals();
    this.logger.info(
      { workers: this.options.workers, pid: process.pid, forker: 'throng' },
      'cluster:starting',
    );
    this.pool.watch();
    if (this.options.primary) await this.options.primary();
    if (this.options.services) await this.#startServices();
    if (this.options.control)
      this.#control = await ControlServer.start(this, this.options.control, this.logger);
  }

  /** The services status pushed to workers; null until a services host exists. */
  statusUpdate(): StatusUpdate {
    return { services: this.services?.snapshot() ?? null, sentAt: Date.now() };
  }

  /** Drains and re-forks every worker, at most `recycle.concurrency` out of service at once (SIGHUP). */
  rollingRestart(reason: string): void {
    for (const handle of this.pool.handles) this.#queue.request(handle, reason);
  }

  /** Graceful stop of everything; exits the process with `code` (1 if any step failed). */
  shutdown(reason: string, code = 0): Promise<never> {
    this.#shutdown ??= this.#runShutdown(reason, code);
    return this.#shutdown;
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

  #publishStatus(): void {
    const update = this.statusUpdate();
    applyStatusUpdate(update, true, this.options.statusInterval * 3);
    this.pool.broadcastStatus();
  }

  /** Draws the worker's recycle limits; the request limit is sent once it is ready, as steward() does. */
  #attachLimits(handle: WorkerHandle): void {
    const limits = this.#policies.map((policy) => policy.forWorker(Math.random));
    const maxRequests = limits.find((limit) => limit.limits.maxRequests !== undefined)?.limits.maxRequests;
    handle.channel.on('worker:heartbeat', () => this.#checkLimits(handle, limits));
    // The agent reports `max-requests` the moment it crosses the limit; anything else is the
    // application's own `disconnect()`, named as the steward() recycler names it.
    handle.channel.on('worker:recycle-request', (message) =>
      this.#queue.request(handle, message.reason === 'max-requests' ? message.reason : 'worker-request'),
    );
    if (maxRequests !== undefined)
      void handle.whenReady().then(() => handle.channel.send('worker:recycle-limit', { maxRequests }));
  }

  /** Runs on every heartbeat so memory hysteresis sees each sample; acts only past `minLifetime`. */
  #checkLimits(handle: WorkerHandle, limits: WorkerLimit[]): void {
    const sample = { age: handle.age, requests: handle.requests, rss: handle.rss, heapUsed: handle.heapUsed };
    let reason: string | null = null;
    for (const limit of limits) reason ??= limit.check(sample);
    if (reason !== null && handle.age >= this.options.recycle.minLifetime)
      this.#queue.request(handle, reason);
  }

  #afterExit(handle: WorkerHandle, cause: ExitCause): void {
    if (this.pool.stopping) return;
    if (cause !== 'retired' && cause !== 'drain_timeout') {
      const { code, signal } = handle.exit ?? { code: null, signal: null };
      // No backoff here: throng has already forked the next worker on the disconnect.
      handle.logger.warn({ cause, code, signal, error: handle.bootError ?? undefined }, 'worker:crash');
    }
    // throng stops re-forking once `lifetime` has passed; with the last worker gone, the primary ends.
    if (this.pool.handles.length === 0 && Date.now() - this.#startedAt >= this.options.lifetime) {
      this.logger.info({ lifetime: this.options.lifetime }, 'cluster:lifetime:ended');
      void this.shutdown('lifetime', 0);
      return;
    }
    this.#queue.next();
  }

  async #runShutdown(reason: string, code: number): Promise<never> {
    const started = Date.now();
    const { grace } = this.options;
    // throng's own handler exits at `grace` with process.exitCode: a forced end must not look clean.
    process.exitCode = 1;
    this.logger.info({ reason, grace }, 'cluster:shutdown:start');
    this.pool.markStopping();
    this.#queue.next();
    clearInterval(this.#statusTimer);
    const workers = this.pool.handles.map(async (handle) => {
      const exit = await drainWorker(handle, 'shutdown', grace);
      // throng signals every worker itself; one still booting dies of it before the agent can ignore
      // it. It never served a request, so nothing was cut.
      const killedBooting = handle.readyAt === null && this.options.signals.includes(exit.signal!);
      return exit.code === 0 || killedBooting;
    });
    const steps = await Promise.allSettled([
      Promise.all(workers).then((results) => results.every(Boolean)),
      this.services?.stop(grace) ?? true,
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

  /**
   * throng's own listeners run first: they stop its re-forking and send the signal to every worker,
   * which the worker agent ignores (the drain order below is what retires a worker gracefully).
   */
  #installSignals(): void {
    for (const signal of this.options.signals) {
      process.on(signal, () => {
        this.#signalsSeen++;
        if (this.#signalsSeen > 1) {
          this.logger.warn({ signal }, 'cluster:shutdown:forced');
          for (const handle of this.pool.handles) handle.worker.process.kill('SIGKILL');
          this.services?.kill();
          process.exit(1);
        }
        void this.shutdown(signal, 0);
      });
    }
    process.on('SIGHUP', () => {
      this.logger.info({ signal: 'SIGHUP' }, 'cluster:rolling-restart:start');
      this.rollingRestart('rolling-restart');
    });
    process.on('SIGUSR2', () => {
      if (!this.services) this.logger.warn({ signal: 'SIGUSR2' }, 'services:restart:none');
      else void this.services.restart('SIGUSR2');
    });
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
