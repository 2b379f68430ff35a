import type { WorkerHandle } from './worker-handle.js';

/**
 * What happened to a recycled worker's replacement before the old worker drains:
 * - `ready`: the replacement is serving (surge-then-drain), or comes after the drain (`replacement` null:
 *   throng forks it when the old worker disconnects);
 * - `failed`: the replacement exited before it was ready; the old worker keeps serving;
 * - `gone`: the old worker died on its own meanwhile; the replacement simply takes its place.
 */
export type Preparation =
  | { kind: 'ready'; replacement: WorkerHandle | null }
  | { kind: 'failed'; replacement: WorkerHandle }
  | { kind: 'gone'; replacement: WorkerHandle };

/**
 * How one worker is replaced. The recycler decides when (triggers, queue, budget, backoff) and drains
 * the old worker; a strategy says whether one more recycle fits in the budget and what comes before
 * the drain. One per file: `surge-then-drain.ts` (`steward()`), `../throng/drain-then-refork.ts`.
 */
export interface ReplacementStrategy {
  /**
   * The capacity missing because of recycling while the workers of `inProgress` are being recycled;
   * another recycle starts only while it is below `recycle.concurrency`.
   */
  outOfService(inProgress: ReadonlySet<WorkerHandle>): number;
  /** False when no replacement could follow (past throng's `lifetime`): the recycle is skipped. */
  canReplace(): boolean;
  /** Runs before the old worker drains. */
  prepare(old: WorkerHandle): Promise<Preparation>;
}
