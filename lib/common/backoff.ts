/** Random source; tests may pass a seeded one. */
export type Random = () => number;

/** Jittered exponential backoff: reconnects, retries and restarts. */
export interface BackoffOptions {
  /** First delay in ms. */
  initialDelay: number;
  /** Ceiling in ms. */
  maxDelay: number;
  /** Spread as a fraction of the delay, 0..1: the delay is drawn from [d·(1−j), d·(1+j)], capped. */
  jitter: number;
}

/** Jittered exponential backoff: attempt 0 → initialDelay, doubling up to maxDelay. */
export function backoffDelay(attempt: number, options: BackoffOptions, random: Random = Math.random): number {
  const base = Math.min(options.maxDelay, options.initialDelay * 2 ** Math.min(attempt, 30));
  const spread = base * options.jitter * (random() * 2 - 1);
  return Math.max(0, Math.round(Math.min(options.maxDelay, base + spread)));
}

/**
 * OTP-style restart intensity: more than `intensity` events within `period` ms means "too many".
 * Keeps only the timestamps inside the window.
 */
export class RestartIntensity {
  readonly #intensity: number;
  readonly #period: number;
  readonly #now: () => number;
  #events: number[] = [];

  constructor(intensity: number, period: number, now: () => number = Date.now) {
    this.#intensity = intensity;
    this.#period = period;
    this.#now = now;
  }

  /** Records one event; returns true when the window now holds more than `intensity` events. */
  record(): boolean {
    const now = this.#now();
    this.#events = this.#events.filter((at) => now - at < this.#period);
    this.#events.push(now);
    return this.#events.length > this.#intensity;
  }

  /** Events inside the current window (also the attempt number for backoff). */
  get recent(): number {
    const now = this.#now();
    return this.#events.filter((at) => now - at < this.#period).length;
  }

  reset(): void {
    this.#events = [];
  }
}

/** A sleep that ends early (resolving false) when the signal aborts. */
export function delay(ms: number, signal?: AbortSignal): Promise<boolean> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve(false);
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve(true);
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      resolve(false);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
