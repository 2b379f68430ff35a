/**
 * Wakes a consumer when an event it failed becomes due again, even when no NOTIFY arrives (a retry is
 * written with a future `run_at`, which sends none). Keeps the due times sorted and one timer armed for
 * the earliest; when it fires, every time already past is dropped and the next one is armed.
 */
export class RetryAlarm {
  readonly #onDue: () => void;
  #times: number[] = [];
  #timer: NodeJS.Timeout | undefined;

  constructor(onDue: () => void) {
    this.#onDue = onDue;
  }

  /** An event becomes due at `at` (epoch ms). */
  add(at: number): void {
    const index = this.#times.findIndex((time) => time > at);
    this.#times.splice(index < 0 ? this.#times.length : index, 0, at);
    if (index === 0 || this.#times.length === 1) this.#arm();
  }

  clear(): void {
    clearTimeout(this.#timer);
  }

  #arm(): void {
    clearTimeout(this.#timer);
    const next = this.#times[0];
    if (next === undefined) return;
    this.#timer = setTimeout(
      () => {
        const now = Date.now();
        while (this.#times.length > 0 && this.#times[0]! <= now) this.#times.shift();
        this.#onDue();
        this.#arm();
      },
      Math.max(0, next - Date.now()),
    );
  }
}
