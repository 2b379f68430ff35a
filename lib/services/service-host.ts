import type { Logger } from 'pino';
import { delay, type Random } from '../common/backoff.js';
import { redactDeep } from '../common/logger.js';
import { coerceError } from '../errors.js';
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
}

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

  constructor(services: readonly ResolvedService[], options: ServiceHostOptions) {
    this.#options = options;
    this.#logger = options.logger;
    this.#runners = services.map((service) => new ServiceRunner(service, options.logger, options.random));
    for (const runner of this.#runners) runner.record.on('change', () => this.#scheduleSnapshot());
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
