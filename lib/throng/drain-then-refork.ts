import type { Preparation, ReplacementStrategy } from '../primary/replacement-strategy.js';
import type { WorkerHandle } from '../primary/worker-handle.js';
import type { PoolView } from '../primary/worker-pool.js';

/**
 * Replacement for a primary that does not fork its own workers: throng forks a new one when an old one
 * disconnects, so the old worker drains first. A recycle starts only while fewer than `concurrency`
 * workers are out of service, counting both the draining ones and the booting replacements: with
 * `concurrency: 1` at most one worker's capacity is missing at any moment.
 */
export class DrainThenRefork implements ReplacementStrategy {
  readonly #pool: PoolView;

  constructor(pool: PoolView) {
    this.#pool = pool;
  }

  /** A worker being recycled counts from the moment its recycle starts, before it is told to drain. */
  outOfService(inProgress: ReadonlySet<WorkerHandle>): number {
    let outOfService = 0;
    for (const handle of this.#pool.handles)
      if (handle.state === 'draining' || handle.state === 'booting' || inProgress.has(handle)) outOfService++;
    return outOfService;
  }

  /** throng decides alone whether it re-forks (it stops once its `lifetime` has passed). */
  canReplace(): boolean {
    return true;
  }

  async prepare(): Promise<Preparation> {
    return { kind: 'ready', replacement: null };
  }
}
