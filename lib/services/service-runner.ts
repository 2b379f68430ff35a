import { AsyncLocalStorage } from 'node:async_hooks';
import type { Logger } from 'pino';
import { backoffDelay, delay, type Random, RestartIntensity } from '../common/backoff.js';
import { coerceError, StewardError, serializeError } from '../errors.js';
import type { FencingToken, Lease, LeaseStrategy } from './lease.js';
import type { ResolvedService } from './service-options.js';
import { ServiceRecord } from './service-record.js';
import type { ServiceContext } from './types.js';

/** How one run of a service ended. */
type RunEnd =
  | { kind: 'stopped' } // its signal aborted for a stop or a lost lock, and it settled
  | { kind: 'crashed'; error: Error }; // threw, rejected, returned early, stalled, or ignored a stall stop

/**
 * The service whose code is executing, carried through its timers and promises, so an exception the
 * service throws outside `run` (a stray callback) is charged to it instead of killing the process.
 */
export const serviceScope = new AsyncLocalStorage<{ runner: ServiceRunner; run: AbortController }>();

/**
 * Supervises one service for the life of its host: runs it, restarts it after a crash with jittered
 * backoff, marks it `failed` past the restart intensity (and keeps retrying at the maximum delay), runs
 * the stall watchdog, and for singletons holds the lease (from the injected strategy) while the service runs.
 */
export class ServiceRunner {
  readonly record: ServiceRecord;
  readonly #service: ResolvedService;
  readonly #logger: Logger;
  readonly #random: Random;
  readonly #leases: LeaseStrategy | undefined;
  readonly #stopping = new AbortController();
  readonly #intensity: RestartIntensity;
  #current: AbortController | undefined;
  #done: Promise<void> = Promise.resolve();
  #clean = true;

  constructor(
    service: ResolvedService,
    logger: Logger,
    random: Random = Math.random,
    leases: LeaseStrategy | undefined = undefined,
  ) {
    if (service.singleton && !leases)
      throw new Error(`Service "${service.name}" is a singleton but its host was given no lease strategy`);
    this.#service = service;
    this.#leases = leases;
    this.#logger = logger.child({ service: service.name });
    this.#random = random;
    this.#intensity = new RestartIntensity(service.restart.intensity, service.restart.period);
    this.record = new ServiceRecord(service.name, service.singleton !== undefined);
  }

  get name(): string {
    return this.#service.name;
  }

  start(): void {
    this.#done = (this.#service.singleton ? this.#superviseSingleton() : this.#supervise()).catch((error) => {
      // Only a bug in this file lands here; the service itself is fully guarded.
      this.#logger.error({ err: coerceError(error) }, 'service:supervise:error');
      this.#clean = false;
    });
  }

  /** Aborts the current run and waits for it to settle (or be abandoned after `stopTimeout`). */
  async stop(): Promise<boolean> {
    this.#stopping.abort(new Error('service host stopping'));
    await this.#done;
    this.record.setState('stopped');
    return this.#clean;
  }

  /**
   * An exception the service threw outside `run` (see `serviceScope`): a crash of the run it came from,
   * if that run is still the current one (an abandoned run cannot abort its successor).
   */
  crash(error: unknown, run: AbortController): void {
    if (run !== this.#current || run.signal.aborted) {
      this.#logger.warn({ err: coerceError(error) }, 'service:uncaught:after-stop');
      return;
    }
    run.abort(coerceError(error));
  }

  async #supervise(lease?: Lease): Promise<void> {
    const stop = lease ? AbortSignal.any([this.#stopping.signal, lease.lost]) : this.#stopping.signal;
    while (!stop.aborted) {
      const end = await this.#runOnce(stop, lease?.fencing ?? null);
      if (end.kind === 'stopped' || stop.aborted) return;
      if (!(await this.#afterCrash(end.error, stop))) return;
    }
  }

  /** Records the crash, picks the delay, waits; false when a stop came during the wait. */
  async #afterCrash(error: Error, stop: AbortSignal): Promise<boolean> {
    const tooMany = this.#intensity.record();
    const restart = this.#service.restart;
    this.record.update({ restarts: this.record.status.restarts + 1 });
    let wait: number;
    if (tooMany) {
      wait = restart.maxDelay;
      this.record.setState('failed', error);
      this.#logger.error(
        { err: error, crashes: this.#intensity.recent, period: restart.period, retryInMs: wait },
        'service:failed',
      );
    } else {
      wait = backoffDelay(this.#intensity.recent - 1, restart, this.#random);
      this.record.setState('backoff', error);
      this.#logger.warn({ err: error, crashes: this.#intensity.recent, retryInMs: wait }, 'service:backoff');
    }
    return delay(wait, stop);
  }

  /** One run: starts `run`, arms the watchdog, and settles on return, crash, stop or abandonment. */
  async #runOnce(stop: AbortSignal, fencing: FencingToken | null): Promise<RunEnd> {
    const controller = new AbortController();
    this.#current = controller;
    const forward = () => controller.abort(stop.reason);
    stop.addEventListener('abort', forward, { once: true });
    this.record.lastProgressAt = Date.now();
    this.record.update({ connected: null });
    this.record.setState('starting');
    this.#logger.info({ restarts: this.record.status.restarts }, 'service:starting');
    const context = this.#createContext(controller, fencing);
    const settled = serviceScope.run({ runner: this, run: controller }, () => this.#invoke(context.ctx));
    const watchdog = this.#watch(controller);
    const deadline = this.#deadline(controller.signal);
    const outcome = await Promise.race([settled, deadline.expired]);
    deadline.cancel();
    context.end();
    clearInterval(watchdog);
    stop.removeEventListener('abort', forward);
    this.#current = undefined;
    return this.#classify(outcome, controller.signal, stop);
  }

  /**
   * The context of one run. Once the run is stopping or over, its state reports are ignored: a run that
   * was abandoned, or is reconnecting while told to stop, must not mark the service `running` again.
   * Events it still handles are counted: they happened.
   */
  #createContext(run: AbortController, fencing: FencingToken | null): { ctx: ServiceContext; end(): void } {
    const base = this.record.createContext(run.signal, this.#logger, fencing);
    let live = true;
    const current = () => live && !run.signal.aborted;
    const ctx: ServiceContext = {
      ...base,
      ready: () => current() && base.ready(),
      standby: (reason) => current() && base.standby(reason),
      setConnected: (connected) => live && base.setConnected(connected),
      setQueueDepth: (depth, oldestAgeMs) => live && base.setQueueDepth(depth, oldestAgeMs),
    };
    const end = () => {
      live = false;
    };
    return { ctx, end };
  }

  /** A synchronous throw and a rejection are the same thing here: a crash. */
  #invoke(context: ServiceContext): Promise<{ error?: Error }> {
    let result: Promise<void>;
    try {
      result = Promise.resolve(this.#service.run(context));
    } catch (error) {
      result = Promise.reject(error);
    }
    return result.then(
      () => ({}),
      (error: unknown) => ({ error: coerceError(error) }),
    );
  }

  /** Resolves `stopTimeout` ms after the run's signal aborted: the run is then abandoned. */
  #deadline(signal: AbortSignal): { expired: Promise<{ timedOut: true }>; cancel(): void } {
    let timer: NodeJS.Timeout | undefined;
    let onAbort = () => {};
    const expired = new Promise<{ timedOut: true }>((resolve) => {
      onAbort = () => {
        this.record.setState('stopping');
        timer = setTimeout(() => resolve({ timedOut: true }), this.#service.stopTimeout);
      };
      signal.addEventListener('abort', onAbort, { once: true });
    });
    const cancel = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
    };
    return { expired, cancel };
  }

  #classify(outcome: { error?: Error; timedOut?: true }, run: AbortSignal, stop: AbortSignal): RunEnd {
    const aborted = run.aborted;
    if (outcome.timedOut) {
      const error = new StewardError(
        'STEWARD_ERR_SERVICE_STOP_TIMEOUT',
        `Service "${this.name}" did not settle within stopTimeout (${this.#service.stopTimeout} ms) and was abandoned`,
      );
      this.#logger.error({ err: error, stopTimeout: this.#service.stopTimeout }, 'service:stop:timeout');
      this.record.status.lastError = { name: error.name, message: error.message, code: error.code };
      if (this.#stopping.signal.aborted) this.#clean = false;
    }
    // Aborted by the host or a lost lock: a stop, whatever `run` did while settling.
    if (aborted && stop.aborted) {
      if (outcome.error) {
        this.#logger.error({ err: outcome.error }, 'service:stop:error');
        this.record.status.lastError = serializeError(outcome.error);
        if (this.#stopping.signal.aborted) this.#clean = false;
      } else if (!outcome.timedOut) this.#logger.info('service:stopped');
      return { kind: 'stopped' };
    }
    // Aborted by the watchdog or an uncaught exception from the service: the abort reason is the cause.
    if (aborted) return { kind: 'crashed', error: coerceError(run.reason) };
    if (outcome.error) return { kind: 'crashed', error: outcome.error };
    return {
      kind: 'crashed',
      error: new Error(`Service "${this.name}" run() resolved before its signal aborted`),
    };
  }

  /** The stall watchdog: armed only while the service has work (connected or a backlog). */
  #watch(controller: AbortController): NodeJS.Timeout | undefined {
    const timeout = this.#service.stallTimeout;
    if (timeout === 0) return undefined;
    let armedAt = Date.now();
    const timer = setInterval(
      () => {
        if (controller.signal.aborted) return;
        const now = Date.now();
        if (!this.record.hasWork) {
          armedAt = now;
          return;
        }
        const idle = now - Math.max(armedAt, this.record.lastProgressAt);
        if (idle < timeout) return;
        const error = new StewardError(
          'STEWARD_ERR_SERVICE_STALLED',
          `Service "${this.name}" reported no progress for ${idle} ms (stallTimeout ${timeout} ms) while it had work`,
          { details: { queueDepth: this.record.status.queueDepth, connected: this.record.status.connected } },
        );
        this.#logger.warn({ err: error, idleMs: idle, stallTimeout: timeout }, 'service:stalled');
        this.record.stalled = true;
        controller.abort(error);
      },
      Math.max(10, Math.min(1_000, Math.floor(timeout / 5))),
    );
    timer.unref();
    return timer;
  }

  /** Singletons wait in `standby` for the lock, run while it is held, and go back to waiting if it is lost. */
  async #superviseSingleton(): Promise<void> {
    const singleton = this.#service.singleton!;
    const acquire = this.#leases!;
    while (!this.#stopping.signal.aborted) {
      this.record.update({ leader: false });
      this.record.setState('standby');
      this.#logger.info({ key: singleton.key }, 'service:standby');
      let lease: Lease | null;
      try {
        lease = await acquire(singleton, this.#logger, this.#stopping.signal);
      } catch (error) {
        this.#logger.error({ err: coerceError(error) }, 'service:singleton:error');
        if (!(await delay(singleton.checkInterval, this.#stopping.signal))) return;
        continue;
      }
      if (!lease) return;
      this.record.update({ leader: true });
      this.#logger.info({ key: singleton.key }, 'service:leader');
      await this.#supervise(lease);
      await lease.release().catch(() => {});
      if (!lease.lost.aborted) continue;
      // Give the hosts in standby two lock attempts first: the loss hints that this host's link is poor.
      const pause = 2 * singleton.checkInterval;
      this.#logger.warn({ err: lease.lost.reason, retryInMs: pause }, 'service:leader:lost');
      this.record.update({ leader: false });
      this.record.setState('standby');
      if (!(await delay(pause, this.#stopping.signal))) return;
    }
  }
}
