import type { Logger } from 'pino';
import { applyStatusUpdate } from '../common/cluster-status.js';
import { EventLoopWatchdog } from '../common/event-loop-watchdog.js';
import type { StatusUpdate } from '../common/messages.js';
import { coerceError } from '../errors.js';
import {
  dispatchedNames,
  setDispatchIntake,
  setDispatchTransport,
  setLoadIntake,
} from '../listeners/dispatch.js';
import type { ClusterMetrics } from '../metrics/cluster-aggregator.js';
import type { ResolvedOptions } from '../options.js';
import { EXIT_SERVICES_MODULE } from '../services/exit-code.js';
import { serviceUp, setRemoteServicesUp } from '../services/service-figures.js';
import { createClusterMetrics } from './cluster-sources.js';
import type { ControlServer } from './control-server.js';
import { LifecycleLog, recordLifecycle } from './dashboard/lifecycle-log.js';
import type { DispatchRouter } from './dispatch-router.js';
import { createServicesSupervisor } from './services-placement.js';
import type { ServicesSupervisor } from './services-supervisor.js';
import type { PoolView } from './worker-pool.js';

/**
 * What every cluster primary does, whoever forks the workers (`steward()` itself, or throng through
 * `forThrong()`): host the services and push their status to the workers, serve the control server,
 * answer the process signals, and shut down gracefully with one exit code. Subclasses say how their
 * workers are stopped, killed and rolled.
 */
export abstract class ClusterPrimary {
  readonly options: ResolvedOptions;
  /** The primary's logger; every lifecycle event logged through it (or a child) lands in `lifecycle`. */
  readonly logger: Logger;
  /** The last lifecycle events of this primary, as the dashboard lists them. */
  readonly lifecycle = new LifecycleLog();
  abstract readonly pool: PoolView;
  /** Cluster-wide metrics, served by the control server's `/metrics`. */
  abstract readonly metrics: ClusterMetrics;
  /** The services host (in this process or the sibling); undefined for a web-only server. */
  services: ServicesSupervisor | undefined;
  /** Routes the events the listeners dispatch to the workers (see docs/valve.md); with services only. */
  dispatch: DispatchRouter | undefined;
  #control: ControlServer | undefined;
  #statusTimer: NodeJS.Timeout | undefined;
  #shutdown: Promise<never> | undefined;
  #signalsSeen = 0;
  /**
   * The primary hands every new connection to a worker (round-robin scheduling) and hosts the services
   * with `placement: 'primary'`: a blocked event loop here stalls both, so it is watched and reported.
   */
  readonly eventLoop: EventLoopWatchdog;

  constructor(options: ResolvedOptions, logger: Logger) {
    this.options = options;
    this.logger = recordLifecycle(logger, this.lifecycle);
    this.eventLoop = new EventLoopWatchdog({ logger: this.logger, processName: 'primary' }).start();
  }

  /** Problems of this process itself, for `/healthz`. */
  ownProblems(): string[] {
    const problem = this.eventLoop.problem;
    return problem === null ? [] : [problem];
  }

  /** Cluster metrics over `pool` and, with `placement: 'sibling'`, the services sibling's reports. */
  protected createMetrics(pool: PoolView): ClusterMetrics {
    return createClusterMetrics(
      pool,
      this.options,
      this.logger,
      () => this.services?.channel,
      () => this.services?.snapshot()?.stale !== undefined,
    );
  }

  /** Drains every worker within `grace` ms; true when all of them ended cleanly. */
  protected abstract stopWorkers(grace: number): Promise<boolean>;
  /** Kills every worker at once (a forced stop). */
  protected abstract killWorkers(): void;
  /** Replaces every worker within the recycle budget (SIGHUP). */
  protected abstract rollingRestart(reason: string): Promise<void>;

  /** The services status pushed to workers; null until a services host exists. */
  statusUpdate(): StatusUpdate {
    return { services: this.services?.snapshot() ?? null, sentAt: Date.now() };
  }

  /** Rolling restart of every worker (as SIGHUP does); resolves when it ended. */
  restartWorkers(reason: string): Promise<void> {
    this.logger.info({ reason, workers: this.pool.handles.length }, 'cluster:rolling-restart:start');
    return this.rollingRestart(reason);
  }

  /** Graceful restart of the services host (as SIGUSR2 does); false when there is none. */
  async restartServices(reason: string): Promise<boolean> {
    if (!this.services) {
      this.logger.warn({ reason }, 'services:restart:none');
      return false;
    }
    await this.services.restart(reason);
    return true;
  }

  /** Graceful stop of everything; exits the process with `code` (1 if any step failed). */
  shutdown(reason: string, code = 0): Promise<never> {
    this.#shutdown ??= this.#runShutdown(reason, code);
    return this.#shutdown;
  }

  /** Binds the control server; a port in use rejects before anything is forked. */
  protected async startControl(): Promise<void> {
    if (!this.options.control) return;
    // The control server and the dashboard page load only when a control port is configured.
    const { ControlServer, clusterEndpoints } = await import('./control-server.js');
    this.#control = await ControlServer.start(clusterEndpoints(this), this.options.control, this.logger);
  }

  /** Starts the services host and pushes its status on every change and every `statusInterval`. */
  protected async startServices(): Promise<void> {
    if (!this.options.services) return;
    // The valve and its metrics (prom-client) load only with services: a web-only primary never needs them.
    const [services, { DispatchRouter }] = await Promise.all([
      createServicesSupervisor(this.options, this.logger, this.eventLoop),
      import('./dispatch-router.js'),
    ]);
    this.services = services;
    if (this.options.placement !== 'primary')
      setRemoteServicesUp(() => {
        const snapshot = services.snapshot();
        return (snapshot?.services ?? []).map((service) => ({
          service: service.name,
          up: snapshot?.stale === undefined && serviceUp(service),
        }));
      });
    services.on('change', () => this.#publishStatus());
    const dispatch = new DispatchRouter(this.pool, this.logger, this.options.valve);
    this.dispatch = dispatch;
    if (this.options.placement === 'primary') {
      setDispatchTransport((name, event) => dispatch.dispatch(name, event));
      dispatch.onLimit(setDispatchIntake);
      dispatch.onLoadLimit(setLoadIntake);
    }
    services.on('sibling:forked', (channel) => {
      this.metrics.acceptFinalReport(channel, channel);
      dispatch.attachServicesHost(channel);
    });
    services.on('config-error', (error) => void this.#configError(error));
    this.#statusTimer = setInterval(() => this.#publishStatus(), this.options.statusInterval);
    this.#statusTimer.unref();
    try {
      await services.start();
      if (this.options.placement === 'primary') dispatch.setDispatchedNames(dispatchedNames());
    } catch (error) {
      // Only loading the services module can fail here: no worker is forked, the process exits 78.
      await this.#configError(coerceError(error));
    }
  }

  /**
   * A services module that cannot be loaded is a configuration error: restarting would fail the same way,
   * so the whole application exits with EX_CONFIG (78), which `RestartPreventExitStatus=78` tells systemd
   * not to restart.
   */
  #configError(error: Error): Promise<never> {
    const code = (error as { code?: unknown }).code;
    this.logger.fatal({ err: error, code }, 'cluster:config-error');
    return this.shutdown('config-error', EXIT_SERVICES_MODULE);
  }

  /** Pushes the services status to every worker (and to `status()` in this process). */
  #publishStatus(): void {
    applyStatusUpdate(this.statusUpdate(), true, this.options.statusInterval * 3);
    this.pool.broadcastStatus();
  }

  async #runShutdown(reason: string, code: number): Promise<never> {
    const started = Date.now();
    const { grace } = this.options;
    this.logger.info({ reason, grace }, 'cluster:shutdown:start');
    clearInterval(this.#statusTimer);
    // Workers drain while services settle their in-flight events; either failing makes the exit code 1.
    const steps = await Promise.allSettled([this.stopWorkers(grace), this.services?.stop(grace) ?? true]);
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
   * The shutdown signals (a second one forces: every process is killed, exit code 1), SIGHUP (rolling
   * restart of the workers only) and SIGUSR2 (graceful restart of the services host only).
   */
  protected installSignals(): void {
    for (const signal of this.options.signals) {
      process.on(signal, () => {
        this.#signalsSeen++;
        if (this.#signalsSeen > 1) {
          this.logger.warn({ signal }, 'cluster:shutdown:forced');
          this.killWorkers();
          this.services?.kill();
          process.exit(1);
        }
        void this.shutdown(signal, 0);
      });
    }
    process.on('SIGHUP', () => void this.restartWorkers('rolling-restart'));
    process.on('SIGUSR2', () => void this.restartServices('SIGUSR2'));
  }
}
