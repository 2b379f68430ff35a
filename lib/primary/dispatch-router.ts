import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import { AdaptiveLimit } from '../common/adaptive-limit.js';
import type { IpcChannel } from '../common/ipc.js';
import type { ValveSignal } from '../common/messages.js';
import type { ValveStatus } from '../common/status-document.js';
import { VALVE_DEFAULTS, type ValveSettings } from '../common/valve-options.js';
import { StewardError } from '../errors.js';
import { CounterRecord, GaugeRecord, HistogramRecord, setPrimaryFamilies } from '../metrics/metric-record.js';
import type { WorkerHandle } from './worker-handle.js';
import type { PoolView } from './worker-pool.js';

/** Where a new worker's limit starts: a few events at once, then it adapts. */
const INITIAL_LIMIT = 4;

/**
 * A closed worker waits this many times an event's duration before the next (see `#pace`), up to
 * `valve.maxPause`: events then hold about 0.1 % of its loop. The requests that arrive during an event
 * wait for it and then for the worker to catch up on them, and on a busy cluster the client's other
 * requests queue behind those, so one event delays several times its own share of the requests: at 1 %
 * (99) the open-loop p99 of bench:valve rose 1.4x to 1.8x; at 0.1 % its median stayed within 1.3x.
 */
const PACE_FACTOR = 999;
/** Calm reports in a row (250 ms each) before a closed worker's limit may rise again. */
const REOPEN_AFTER_CALM_SAMPLES = 4;
/** Reports (250 ms each) after HTTP starts during which overload drops a worker's limit to its floor at once. */
const HTTP_ONSET_SAMPLES = 4;

/** A dispatched event waits at most this long for a worker's answer (a listener's own timeout comes first). */
const RUN_TIMEOUT_MS = 60 * 60 * 1000;

/** One worker as the router sees it. */
interface Route {
  handle: WorkerHandle;
  names: Set<string>;
  limit: AdaptiveLimit;
  inFlight: number;
  signal: ValveSignal | null;
  /** Pushed down to its floor by overload, until the limit rises again. */
  closed: boolean;
  /** While closed, the worker gets its next event only from this time on (epoch ms). */
  pausedUntil: number;
  pauseTimer: NodeJS.Timeout | undefined;
  /** Calm reports in a row while closed. */
  calmSamples: number;
  /** Reports in a row that served HTTP (0: the last one served none). */
  httpSamples: number;
  /** Events this worker handled. */
  handled: number;
}

type Outcome = 'processed' | 'failed' | 'worker_lost';

interface Waiter {
  name: string;
  admit(route: Route): void;
  reject(error: Error): void;
}

/**
 * Runs in the primary: hands each dispatched event to a ready worker that registered a handler for its
 * name, within that worker's adaptive limit, and answers with the handler's outcome. A draining or dead
 * worker gets no new events; an event whose worker died fails, so the listener retries it at its source.
 * Each worker's limit follows its load (see `AdaptiveLimit`); their sum is the cluster-wide intake pushed
 * to the services host, so the backlog stays in the broker or the database.
 */
export class DispatchRouter {
  readonly #logger: Logger;
  readonly #settings: ValveSettings;
  readonly #routes = new Map<number, Route>();
  #waiters: Waiter[] = [];
  #dispatched: string[] = [];
  #unhandledLogged = new Set<string>();
  #closed = false;
  #pushedLimit = -1;
  #servicesHost: IpcChannel | undefined;
  readonly #limitListeners: ((limit: number) => void)[] = [];
  readonly #loadLimitListeners: ((limit: number) => void)[] = [];
  /**
   * Events the handlers of `valve: 'workers'` listeners (in the sibling or the primary) may run at once:
   * halved on every overloaded worker report, one more on every calm one (doubled when no worker serves
   * HTTP), between the valve's floor and ceiling. Those handlers load the workers only through what they
   * share (the database), so unlike a worker's limit it is not held to its use.
   */
  readonly #loadLimit: AdaptiveLimit;
  #pushedLoadLimit = -1;
  readonly #metrics: ReturnType<typeof registerValveMetrics>;

  constructor(pool: PoolView, logger: Logger, settings: ValveSettings = VALVE_DEFAULTS) {
    this.#logger = logger.child({ component: 'valve' });
    this.#settings = settings;
    this.#loadLimit = new AdaptiveLimit({
      floor: settings.adaptive ? settings.floor : settings.ceiling,
      ceiling: settings.ceiling,
      initial: settings.ceiling,
      backoff: 0.5,
    });
    this.#metrics = registerValveMetrics(this);
    pool.on('worker:forked', (handle) => this.#watch(handle));
    pool.on('worker:ready', () => {
      this.#checkHandlers();
      this.#pump();
    });
    pool.on('worker:exit', (handle) => {
      this.#routes.delete(handle.id);
      this.#changed();
    });
  }

  /** The cluster-wide limit: the sum of the limits of the workers that take events now. */
  get limit(): number {
    let sum = 0;
    for (const route of this.#routes.values()) if (this.#takesEvents(route)) sum += route.limit.limit;
    return sum;
  }

  /** Events the handlers of `valve: 'workers'` listeners may run at once now. */
  get loadLimit(): number {
    return this.#loadLimit.limit;
  }

  get inFlight(): number {
    let sum = 0;
    for (const route of this.#routes.values()) sum += route.inFlight;
    return sum;
  }

  /** Runs `event` in a worker's handler for `name`; rejects with the handler's error or the worker's loss. */
  async dispatch(name: string, event: unknown): Promise<void> {
    const route = await this.#admit(name);
    const started = performance.now();
    route.inFlight++;
    this.#changed();
    let outcome: Outcome = 'processed';
    try {
      await route.handle.channel.request('dispatch:run', { name, event }, RUN_TIMEOUT_MS);
      route.handled++;
    } catch (error) {
      outcome = route.handle.channel.closed ? 'worker_lost' : 'failed';
      if (outcome === 'worker_lost')
        this.#logger.warn({ name, worker: route.handle.id }, 'dispatch:worker-lost');
      throw error;
    } finally {
      route.inFlight--;
      const elapsedMs = performance.now() - started;
      if (route.closed) this.#pace(route, elapsedMs);
      this.#metrics.latency.observe(elapsedMs / 1000, { name, outcome });
      this.#metrics.events.inc({ worker: String(route.handle.id), outcome });
      this.#changed();
      this.#pump();
    }
  }

  /** The names the services host dispatches; a name no ready worker handles is logged as an error. */
  setDispatchedNames(names: string[]): void {
    this.#dispatched = [...new Set(names)];
    this.#unhandledLogged.clear();
    this.#checkHandlers();
  }

  /** Serves the services sibling's dispatches and keeps it told of the valve (the latest sibling only). */
  attachServicesHost(channel: IpcChannel): void {
    this.#servicesHost = channel;
    this.#pushedLimit = -1;
    this.#pushedLoadLimit = -1;
    channel.handle('dispatch:event', (message) => this.dispatch(message.name, message.event));
    channel.on('dispatch:names', (message) => this.setDispatchedNames(message.names));
    this.#push();
  }

  /** Calls `listener` with the load limit whenever it changes (`valve: 'workers'` listeners in this process). */
  onLoadLimit(listener: (limit: number) => void): void {
    this.#loadLimitListeners.push(listener);
    listener(this.loadLimit);
  }

  /** Calls `listener` with the cluster-wide limit whenever it changes (the in-process services host). */
  onLimit(listener: (limit: number) => void): void {
    this.#limitListeners.push(listener);
    listener(this.limit);
  }

  status(): ValveStatus {
    const workers = [...this.#routes.values()].map((route) => ({
      id: route.handle.id,
      state: route.closed ? ('closed' as const) : ('open' as const),
      limit: route.limit.limit,
      inFlight: route.inFlight,
      handled: route.handled,
      loopDelayMs: route.signal ? Math.round(route.signal.loopDelayMs * 10) / 10 : null,
      utilization: roundOrNull(route.signal?.utilization ?? null),
      cpuWait: roundOrNull(route.signal?.cpuWait ?? null),
    }));
    return {
      state: this.#closed ? 'closed' : 'open',
      limit: this.limit,
      inFlight: this.inFlight,
      waiting: this.#waiters.length,
      dispatchedNames: this.#dispatched,
      unhandled: this.#unhandled(),
      workers,
    };
  }

  /** Per-worker figures for the metrics. */
  routes(): { worker: number; limit: number; inFlight: number }[] {
    return [...this.#routes.values()].map((route) => ({
      worker: route.handle.id,
      limit: route.limit.limit,
      inFlight: route.inFlight,
    }));
  }

  #watch(handle: WorkerHandle): void {
    const { floor, ceiling, adaptive } = this.#settings;
    // Without adaptation every worker takes `ceiling` events at once, whatever its load.
    const initial = adaptive ? Math.min(ceiling, Math.max(floor, INITIAL_LIMIT)) : ceiling;
    const route: Route = {
      handle,
      names: new Set(),
      limit: new AdaptiveLimit({ floor: adaptive ? floor : ceiling, ceiling, initial, backoff: 0.5 }),
      inFlight: 0,
      signal: null,
      closed: false,
      pausedUntil: 0,
      pauseTimer: undefined,
      calmSamples: 0,
      httpSamples: 0,
      handled: 0,
    };
    this.#routes.set(handle.id, route);
    handle.channel.on('worker:handlers', (message) => {
      route.names = new Set(message.names);
    });
    handle.channel.on('valve:signal', (message) => {
      route.signal = message;
      const overloaded = this.#overloaded(message);
      const servesHttp = message.httpInFlight > 0 || message.httpRequests > 0;
      // Pacing itself calms a closed worker that serves HTTP: it stays closed until calm for a whole second,
      // or it would reopen on the next report and close again on the one after. A worker that served no
      // HTTP in the interval has nothing to protect: it reopens at once, so a backlog drains at full speed
      // as soon as HTTP stops.
      route.calmSamples = overloaded ? 0 : route.calmSamples + 1;
      route.httpSamples = servesHttp ? route.httpSamples + 1 : 0;
      // Not held to its use: `inFlight` at the ceiling lets a calm report always raise it.
      if (this.#settings.adaptive)
        this.#loadLimit.update({ overloaded, inFlight: this.#settings.ceiling, fast: !servesHttp });
      if (route.closed && !overloaded && servesHttp && route.calmSamples < REOPEN_AFTER_CALM_SAMPLES) {
        this.#push();
        this.#pump();
        return;
      }
      // HTTP arriving at a worker that served none finds a limit grown with nothing to protect (slow
      // start), which says nothing of what HTTP tolerates: overloaded within a second of HTTP's start, it
      // drops to its floor rather than halving report after report while events keep the CPU from the
      // requests.
      const httpJustStarted = servesHttp && route.httpSamples <= HTTP_ONSET_SAMPLES;
      const limit =
        overloaded && httpJustStarted && this.#settings.adaptive
          ? route.limit.toFloor()
          : route.limit.update({ overloaded, inFlight: route.inFlight, fast: !servesHttp });
      this.#logTransition(route, overloaded, limit);
      this.#changed();
      this.#pump();
    });
  }

  #overloaded(signal: ValveSignal): boolean {
    if (signal.loopDelayMs > this.#settings.maxDelay) return true;
    const servesHttp = signal.httpInFlight > 0 || signal.httpRequests > 0;
    if (!servesHttp) return false;
    // A worker waiting for a CPU is overloaded from outside its loop: the other workers' events, the
    // sibling and the database take the cores its requests need, and neither its utilization nor its loop
    // delay rises much for it. Where the kernel does not tell (`null`), the other signals decide alone.
    if (signal.cpuWait !== null && signal.cpuWait > this.#settings.maxCpuWait) return true;
    return signal.utilization > this.#settings.targetUtilization;
  }

  #takesEvents(route: Route): boolean {
    return route.handle.state === 'ready' && !route.handle.channel.closed && route.names.size > 0;
  }

  #pick(name: string): Route | undefined {
    let best: Route | undefined;
    let bestLoad = Number.POSITIVE_INFINITY;
    for (const route of this.#routes.values()) {
      if (
        !this.#takesEvents(route) ||
        !route.names.has(name) ||
        route.inFlight >= route.limit.limit ||
        (route.closed && route.pausedUntil > Date.now())
      )
        continue;
      const load = route.inFlight / route.limit.limit;
      // Among equally loaded workers the one that handled fewer events: a source that hands out one
      // event at a time (LISTEN/NOTIFY) still spreads them.
      if (load < bestLoad || (load === bestLoad && best !== undefined && route.handled < best.handled)) {
        best = route;
        bestLoad = load;
      }
    }
    return best;
  }

  /** Whether some ready worker handles `name` (a name nobody handles fails at once instead of waiting). */
  #handledByAny(name: string): boolean | undefined {
    let anyReady = false;
    for (const route of this.#routes.values()) {
      if (route.handle.state !== 'ready') continue;
      anyReady = true;
      if (route.names.has(name)) return true;
    }
    return anyReady ? false : undefined;
  }

  #admit(name: string): Promise<Route> {
    if (this.#handledByAny(name) === false) return Promise.reject(noHandler(name));
    const route = this.#waiters.length === 0 ? this.#pick(name) : undefined;
    if (route) return Promise.resolve(route);
    return new Promise((resolve, reject) => {
      this.#waiters.push({ name, admit: resolve, reject });
    });
  }

  /** Admits waiting events, oldest first, while a worker has room for them. */
  #pump(): void {
    if (this.#waiters.length === 0) return;
    const still: Waiter[] = [];
    for (const waiter of this.#waiters) {
      const handled = this.#handledByAny(waiter.name);
      if (handled === false) {
        waiter.reject(noHandler(waiter.name));
        continue;
      }
      const route = this.#pick(waiter.name);
      if (route) {
        // Counted now, so the next waiter sees this slot taken.
        route.inFlight++;
        waiter.admit(route);
        route.inFlight--;
      } else still.push(waiter);
    }
    this.#waiters = still;
  }

  #unhandled(): string[] {
    return this.#dispatched.filter((name) => this.#handledByAny(name) === false);
  }

  #checkHandlers(): void {
    for (const name of this.#unhandled()) {
      if (this.#unhandledLogged.has(name)) continue;
      this.#unhandledLogged.add(name);
      const error = noHandler(name);
      this.#logger.error({ err: error, code: error.code, name }, 'dispatch:no-handler');
    }
  }

  /**
   * A closed valve also paces its floor: a CPU-bound event running back to back at the floor would still
   * take a saturated worker's whole loop from HTTP. The next event waits `PACE_FACTOR` times the last one's
   * duration, so events keep at most about 1 / (1 + PACE_FACTOR) of the worker while HTTP needs it, and
   * never stop.
   */
  #pace(route: Route, durationMs: number): void {
    const pause = Math.min(this.#settings.maxPause, Math.ceil(durationMs * PACE_FACTOR));
    route.pausedUntil = Date.now() + pause;
    clearTimeout(route.pauseTimer);
    route.pauseTimer = setTimeout(() => this.#pump(), pause + 1);
    route.pauseTimer.unref();
  }

  /** A worker's valve closes when overload pushed its limit to the floor, and opens once it rises again. */
  #logTransition(route: Route, overloaded: boolean, limit: number): void {
    if (!this.#settings.adaptive) return;
    const closed = route.closed ? limit <= route.limit.floor : overloaded && limit <= route.limit.floor;
    if (closed === route.closed) return;
    route.closed = closed;
    const signal = route.signal;
    this.#logger.info(
      {
        worker: route.handle.id,
        limit,
        inFlight: route.inFlight,
        loopDelayMs: signal?.loopDelayMs,
        utilization: signal?.utilization,
        cpuWait: signal?.cpuWait,
        httpInFlight: signal?.httpInFlight,
      },
      closed ? 'valve:closed' : 'valve:opened',
    );
  }

  /** Pushes the new intake to the services host (runs twice per event: no allocation here). */
  #changed(): void {
    let taking = 0;
    let closed = 0;
    for (const route of this.#routes.values()) {
      if (!this.#takesEvents(route)) continue;
      taking++;
      if (route.closed) closed++;
    }
    this.#closed = taking > 0 && closed === taking;
    this.#push();
  }

  #push(): void {
    const limit = this.limit;
    const loadLimit = this.#loadLimit.limit;
    const limitChanged = limit !== this.#pushedLimit;
    const loadLimitChanged = loadLimit !== this.#pushedLoadLimit;
    if (!limitChanged && !loadLimitChanged) return;
    this.#pushedLimit = limit;
    this.#pushedLoadLimit = loadLimit;
    if (limitChanged) for (const listener of this.#limitListeners) listener(limit);
    if (loadLimitChanged) for (const listener of this.#loadLimitListeners) listener(loadLimit);
    if (this.#servicesHost && !this.#servicesHost.closed)
      this.#servicesHost.send('valve:state', { limit, inFlight: this.inFlight, loadLimit });
  }
}

/** Two decimals, for `/status`. */
function roundOrNull(value: number | null): number | null {
  return value === null ? null : Math.round(value * 100) / 100;
}

function noHandler(name: string): StewardError {
  return new StewardError(
    'STEWARD_ERR_NO_HANDLER',
    `Events named '${name}' are dispatched to the workers, but no ready worker registered \`ctx.handle('${name}', handler)\``,
    { details: { name } },
  );
}

/** The valve's metrics: plain numbers (no prom-client in the primary until it is scraped). */
function registerValveMetrics(router: DispatchRouter) {
  const limit = new GaugeRecord(
    {
      name: 'steward_valve_limit',
      help: 'Events a worker may run at once, as the valve set it from the worker load.',
    },
    () => router.routes().map((route) => ({ labels: { worker: String(route.worker) }, value: route.limit })),
  );
  const inFlight = new GaugeRecord(
    { name: 'steward_valve_inflight', help: 'Dispatched events running in a worker now.' },
    () =>
      router.routes().map((route) => ({ labels: { worker: String(route.worker) }, value: route.inFlight })),
  );
  const loadLimit = new GaugeRecord(
    {
      name: 'steward_valve_load_limit',
      help: "Events the handlers of valve: 'workers' listeners may run at once, as the workers' load set it.",
    },
    () => [{ labels: {}, value: router.loadLimit }],
  );
  const latency = new HistogramRecord(
    {
      name: 'steward_dispatch_seconds',
      help: 'Time from a worker admitting a dispatched event to its handler outcome, in seconds.',
    },
    [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30],
    true,
  );
  const events = new CounterRecord({
    name: 'steward_dispatch_events_total',
    help: 'Dispatched events by worker and outcome (processed, failed, worker_lost).',
  });
  setPrimaryFamilies('valve', () => [
    limit.toJson(),
    inFlight.toJson(),
    loadLimit.toJson(),
    latency.toJson(),
    events.toJson(),
  ]);
  return { latency, events };
}
