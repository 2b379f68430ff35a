import type { Preparation, ReplacementStrategy } from './replacement-strategy.js';
import type { WorkerHandle } from './worker-handle.js';
import type { WorkerPool } from './worker-pool.js';

/**
 * `steward()`'s replacement: fork the replacement first and drain the old worker only once the new one
 * listens, so ready capacity never drops below `workers` and never exceeds `workers + concurrency`.
 */
export class SurgeThenDrain implements ReplacementStrategy {
  readonly #pool: WorkerPool;

  constructor(pool: WorkerPool) {
    this.#pool = pool;
  }

  /** Each recycle under way is one surge: a replacement booting or an old worker draining. */
  outOfService(inProgress: ReadonlySet<WorkerHandle>): number {
    return inProgress.size;
  }

  /** Past `lifetime` no worker is forked: a recycle would only take capacity away. */
  canReplace(): boolean {
    return this.#pool.forking;
  }

  async prepare(old: WorkerHandle): Promise<Preparation> {
    const replacement = this.#pool.fork();
    const kind = await Promise.race([
      replacement.whenReady().then(() => 'ready' as const),
      replacement.exited.then(() => 'failed' as const),
      old.exited.then(() => 'gone' as const),
    ]);
    return { kind, replacement };
  }
}
