import type { Logger } from 'pino';
import { delay, type Random } from '../common/backoff.js';
import { EventLoopWatchdog } from '../common/event-loop-watchdog.js';
import { redactDeep } from '../common/logger.js';
import { coerceError } from '../errors.js';
import { hostProblem } from './host-problem.js';
import type { LeaseStrategy } from './lease.js';
import type { ResolvedService } from './service-options.js';
import { ServiceRunner, serviceScope } from './service-runner.js';
import type { ServicesHostRole, ServicesSnapshot } from './types.js';

export interface ServiceHostOptions {
  role: ServicesHostRole;
  /** The host's logger; each service gets a child bound with `service`. */
  logger: Logger;
  /** Receives a fresh snapshot shortly after any status change (coalesced over `debounce` ms). */
  onSnapshot?: (snapshot: ServicesSnapshot) => void;
  /** Window in ms over which changes are coalesced into one snapshot. @default 50 */
  debounce?: number;
  /**
   * Charge an uncaught exception or unhandled rejection raised from a service's own callbacks to that
   * service (a crash and a restart) instead of letting it end the process. @default true
   */
  guardProcess?: boolean;
  /** Random source of the restart jitter. @default Math.random */
  random?: Random;
  /** How a `singleton` service wins leadership; required when one is configured. */
  leases?: LeaseStrategy;
  /**
   * The event-loop watchdog of this process, when the process already runs one (the primary); the host
   * starts its own otherwise. A blocked loop is a problem of every service of the host.
   */
  eventLoop?: EventLoopWatchdog;
}

/** How often the host re-evaluates the problems it sees from outside the services. */
const PROBLEM_CHECK_MS = 500;

/**
 * Runs a list of services in this process (primary, sibling or standalone: the same code everywhere),
 * each under its own `ServiceRunner`, and publishes their status as one snapshot.
 */
export class ServiceHost {
  readonly #runners: ServiceRunner[];
  readonly #options: ServiceHostOptions;
  readonly #logger: Logger;
  #timer: NodeJS.Timeout | undefined;
  #stopped: Promise<boolean> | undefined;
  #started = false;
  readonly #eventLoop: EventLoopWatchdog;
  readonly #ownsEventLoop: boolean;
  #problemTimer: NodeJS.Timeout | undefined;
  /** The problem last logged per service, so each new one is logged once and its end once. */
  readonly #loggedProblems = new Map<string, { problem: string; since: number }>();

  constructor(services: readonly ResolvedService[], options: ServiceHostOptions) {
    this.#options = options;
    this.#logger = options.logger;
    this.#runners = services.map(
      (service) => new ServiceRunner(service, options.logger, options.random, options.leases),
    );
    this.#ownsEventLoop = options.eventLoop === undefined;
    this.#eventLoop =
      options.eventLoop ??
      new EventLoopWatchdog({
        logger: options.logger,
        processName: options.role === 'sibling' ? 'services sibling' : `services ${options.role}`,
      });
    for (const runner of this.#runners)
      runner.record.on('change', (status) => {
        this.#logProblem(status.name, status.problem);
        this.#scheduleSnapshot();
      });
  }

  get names(): string[] {
    return this.#runners.map((runner) => runner.name);
  }

  start(): void {
    if (this.#started) return;
    this.#started = true;
    if (this.#options.guardProcess !== false) {
      process.on('uncaughtException', this.#onUncaught);
      process.on('unhandledRejection', this.#onUnhandled);
    }
    this.#logger.info({ services: this.names, host: this.#options.role }, 'services:start');
    for (const runner of this.#runners) runner.start();
    if (this.#ownsEventLoop) this.#eventLoop.start();
    this.#eventLoop.on('change', this.#checkProblems);
    this.#problemTimer = setInterval(this.#checkProblems, PROBLEM_CHECK_MS);
    this.#problemTimer.unref();
  }

  #checkProblems = (): void => {
    if (this.#stopped) return;
    const now = Date.now();
    for (const { record } of this.#runners)
      record.setHostProblem(hostProblem(record, this.#eventLoop.problem, now));
  };

  /** One warn line when a service gets a new problem, one info line when it has none any more. */
  #logProblem(service: string, problem: string | null): void {
    const logged = this.#loggedProblems.get(service);
    if (problem === (logged?.problem ?? null)) return;
    if (problem === null) {
      this.#loggedProblems.delete(service);
      this.#logger.info(
        { service, problem: logged?.problem, ms: logged ? Date.now() - logged.since : 0 },
        'service:problem:cleared',
      );
      return;
    }
    this.#loggedProblems.set(service, { problem, since: logged?.since ?? Date.now() });
    this.#logger.warn({ service, problem }, 'service:problem');
  }

  /**
   * The status of every service now, with this host's role and pid. Errors are redacted: snapshots reach
   * every worker and its health endpoint, and a connection error often quotes its URL.
   */
  snapshot(): ServicesSnapshot {
    return {
      role: this.#options.role,
      pid: process.pid,
      at: Date.now(),
      services: this.#runners.map(({ record }) => ({
        ...record.status,
        lastError: record.status.lastError && redactDeep(record.status.lastError),
      })),
    };
  }

  /**
   * Stops every service at once, each within its own `stopTimeout`, and the whole within `timeout` ms.
   * Resolves true when every run settled cleanly in time. Records are disposed: the host is done.
   */
  stop(timeout: number): Promise<boolean> {
    this.#stopped ??= this.#runStop(timeout);
    return this.#stopped;
  }

  async #runStop(timeout: number): Promise<boolean> {
    const started = Date.now();
    this.#logger.info({ services: this.names, timeout }, 'services:stop:start');
    const all = Promise.all(this.#runners.map((runner) => runner.stop())).then((results) =>
      results.every(Boolean),
    );
    clearInterval(this.#problemTimer);
    this.#eventLoop.off('change', this.#checkProblems);
    if (this.#ownsEventLoop) this.#eventLoop.stop();
    const inTime = await Promise.race([all, delay(timeout).then(() => null)]);
    const clean = inTime === true;
    if (inTime === null) this.#logger.error({ timeout }, 'services:stop:timeout');
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#options.onSnapshot?.(this.snapshot());
    for (const runner of this.#runners) runner.record.dispose();
    process.off('uncaughtException', this.#onUncaught);
    process.off('unhandledRejection', this.#onUnhandled);
    this.#logger.info({ ms: Date.now() - started, clean }, 'services:stop:done');
    return clean;
  }

  #scheduleSnapshot(): void {
    if (this.#timer !== undefined || this.#stopped || !this.#options.onSnapshot) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#options.onSnapshot?.(this.snapshot());
    }, this.#options.debounce ?? 50);
  }

  /** The run whose async context raised the error, if it belongs to this host. */
  #culprit() {
    const scope = serviceScope.getStore();
    return scope && this.#runners.includes(scope.runner) ? scope : undefined;
  }

  #onUncaught = (error: unknown): void => {
    const scope = this.#culprit();
    if (scope) {
      this.#logger.error(
        { err: coerceError(error), service: scope.runner.name },
        'service:uncaught-exception',
      );
      scope.runner.crash(error, scope.run);
      return;
    }
    // Not a service's error: behave as Node would without this listener, unless someone else handles it.
    if (process.listenerCount('uncaughtException') > 1) return;
    this.#logger.fatal({ err: coerceError(error) }, 'process:uncaught-exception');
    process.exit(1);
  };

  #onUnhandled = (reason: unknown): void => {
    const scope = this.#culprit();
    if (scope) {
      this.#logger.error(
        { err: coerceError(reason), service: scope.runner.name },
        'service:unhandled-rejection',
      );
      scope.runner.crash(reason, scope.run);
      return;
    }
    if (process.listenerCount('unhandledRejection') > 1) return;
    this.#logger.fatal({ err: coerceError(reason) }, 'process:unhandled-rejection');
    process.exit(1);
  };
}
