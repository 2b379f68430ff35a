/** Bounds and reaction of an additive-increase / multiplicative-decrease concurrency limit. */
export interface AdaptiveLimitOptions {
  /** The limit never goes below this, so events never starve under any load. */
  floor: number;
  /** The limit never goes above this (the most work the source may hand out at once). */
  ceiling: number;
  /** Where the limit starts. */
  initial: number;
  /** Factor applied on an overloaded sample (0 < backoff < 1). */
  backoff: number;
}

/**
 * An AIMD limit, as Netflix's concurrency-limits `AIMDLimit` does for RPC: every overloaded sample
 * multiplies the limit by `backoff`; every healthy sample taken while the work in flight used at least half
 * of the limit (or while the limit is below where it started) adds one. Probing only when the limit is in use keeps an idle limit from growing past
 * what was ever shown to be safe; the floor and the ceiling bound it either way.
 */
export class AdaptiveLimit {
  readonly #options: AdaptiveLimitOptions;
  #limit: number;

  constructor(options: AdaptiveLimitOptions) {
    this.#options = options;
    this.#limit = clamp(options.initial, options.floor, options.ceiling);
  }

  get limit(): number {
    return this.#limit;
  }

  get floor(): number {
    return this.#options.floor;
  }

  /**
   * Feeds one sample; returns the new limit. `fast` (nothing else competes for the resource) doubles the
   * limit instead of adding one, as TCP's slow start does, so a backlog drains at full speed soon after
   * the competing load is gone.
   */
  update(sample: { overloaded: boolean; inFlight: number; fast?: boolean }): number {
    const { floor, ceiling, backoff } = this.#options;
    if (sample.overloaded) this.#limit = Math.max(floor, Math.floor(this.#limit * backoff));
    // Below its start a calm limit recovers even unused: a valve closed by a burst reopens when it ends.
    else if (sample.inFlight * 2 >= this.#limit || this.#limit < this.#options.initial)
      this.#limit = Math.min(ceiling, sample.fast ? this.#limit * 2 : this.#limit + 1);
    return this.#limit;
  }

  /** Drops the limit to its floor (overload that halving would take several samples to answer); returns it. */
  toFloor(): number {
    this.#limit = this.#options.floor;
    return this.#limit;
  }

  /** Moves the ceiling (a listener with another concurrency joined); the limit follows if above it. */
  setCeiling(ceiling: number): void {
    this.#options.ceiling = Math.max(this.#options.floor, ceiling);
    this.#limit = clamp(this.#limit, this.#options.floor, this.#options.ceiling);
  }
}

function clamp(value: number, floor: number, ceiling: number): number {
  return Math.min(ceiling, Math.max(floor, value));
}
