import type { AgentLogger } from './worker-log.js';

type SignalListener = (signal: NodeJS.Signals) => unknown;

/**
 * The application's own handlers of the shutdown signals (`process.on('SIGTERM', cleanup)`), run by the
 * worker agent when the worker retires, once its servers are drained, and awaited until the drain deadline.
 *
 * Under throng a worker receives the signal itself and its handlers run while it stays alive. Here the
 * primary retires workers over IPC (a SIGTERM to the primary alone must still reach the application's
 * cleanup), and Ctrl-C reaches every process of the group at once. So the agent holds the handlers: a
 * signal received is remembered, and the handlers run exactly once, with that signal, when the drain
 * order comes. A handler that returns a promise (an `async` function) is awaited.
 */
export class AppShutdown {
  readonly #signals: readonly NodeJS.Signals[];
  readonly #logger: AgentLogger;
  readonly #handlers = new Map<NodeJS.Signals, SignalListener[]>();
  readonly #own = new Map<NodeJS.Signals, () => void>();
  #received: NodeJS.Signals | null = null;
  #ran = false;

  constructor(signals: readonly NodeJS.Signals[], logger: AgentLogger) {
    this.#signals = signals;
    this.#logger = logger;
    for (const signal of signals) {
      // Also keeps the default action (exit) away: the primary coordinates the shutdown.
      const own = () => {
        this.#received ??= signal;
      };
      this.#own.set(signal, own);
      process.on(signal, own);
    }
    process.on('newListener', (event) => {
      if (typeof event === 'string' && this.#own.has(event as NodeJS.Signals))
        // The listener is added right after this event: take it over once it is in place.
        queueMicrotask(() => this.#adopt(event as NodeJS.Signals));
    });
  }

  /**
   * The signal whose handlers run at retirement: the one received, else SIGTERM (what throng and process
   * managers send), else the first configured signal the application handles. On Ctrl-C the drain order
   * can arrive before the signal itself is dispatched here, so an application that handles SIGINT only
   * still gets its handler run.
   */
  get signal(): NodeJS.Signals {
    const candidates = [this.#received, 'SIGTERM' as const, ...this.#signals];
    const handled = candidates.find(
      (signal) => signal && this.#signals.includes(signal) && (this.#handlers.get(signal)?.length ?? 0) > 0,
    );
    return handled ?? this.#received ?? 'SIGTERM';
  }

  /** Runs the application's handlers of `signal` once; resolves when they finished or `timeout` ms passed. */
  async run(timeout: number): Promise<void> {
    if (this.#ran) return;
    this.#ran = true;
    const signal = this.signal;
    const handlers = this.#handlers.get(signal) ?? [];
    if (handlers.length === 0) return;
    const started = Date.now();
    this.#logger.info({ signal, handlers: handlers.length, timeout }, 'worker:shutdown-handlers:start');
    const results = handlers.map((handler) => {
      try {
        return Promise.resolve(handler.call(process, signal));
      } catch (error) {
        return Promise.reject(error);
      }
    });
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<'deadline'>((resolve) => {
      timer = setTimeout(() => resolve('deadline'), Math.max(0, timeout));
    });
    const outcome = await Promise.race([Promise.allSettled(results), deadline]);
    clearTimeout(timer);
    if (outcome === 'deadline') {
      this.#logger.warn({ signal, timeout }, 'worker:shutdown-handlers:timeout');
      return;
    }
    for (const result of outcome)
      if (result.status === 'rejected')
        this.#logger.error({ err: result.reason, signal }, 'worker:shutdown-handlers:failed');
    this.#logger.info({ signal, ms: Date.now() - started }, 'worker:shutdown-handlers:done');
  }

  #adopt(signal: NodeJS.Signals): void {
    const own = this.#own.get(signal);
    const list = this.#handlers.get(signal) ?? [];
    for (const listener of process.rawListeners(signal)) {
      if (listener === own) continue;
      process.removeListener(signal, listener as SignalListener);
      list.push(listener as SignalListener);
    }
    this.#handlers.set(signal, list);
  }
}
