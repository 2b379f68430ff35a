import type { Random } from '../../common/backoff.js';

/** What a policy sees of a worker: the figures of its latest heartbeat and its age. */
export interface WorkerSample {
  /** ms since the worker was forked. */
  readonly age: number;
  /** Requests started on its tracked servers. */
  readonly requests: number;
  /** Resident set size in bytes. */
  readonly rss: number;
  /** V8 heap used in bytes. */
  readonly heapUsed: number;
}

/** One worker's limits, drawn at fork, and the check run on each of its heartbeats. */
export interface WorkerLimit {
  /** Limits as drawn for this worker, for logs (`{ maxRequests: 10412 }`). */
  readonly limits: Readonly<Record<string, number>>;
  /** Returns the recycle reason (`max-requests`, `max-rss`...) once the worker is past its limit, else null. */
  check(sample: WorkerSample): string | null;
  /** A limit the worker enforces itself: sent to it once it is ready, reported back when reached. */
  readonly pushed?: PushedLimit;
}

/** The request limit as sent in `worker:recycle-limit`, and whether the worker reported reaching it. */
export interface PushedLimit {
  readonly maxRequests: number;
  reached: boolean;
}

/**
 * A recycle policy: one per file, configured once from `recycle.*` options. `forWorker` draws the
 * thresholds of a newly forked worker (jitter from `random`), so workers forked together do not
 * retire together.
 */
export interface RecyclePolicy {
  readonly name: string;
  forWorker(random: Random): WorkerLimit;
}

/** `base` plus a whole amount drawn uniformly from [0, jitter]. */
export function withJitter(base: number, jitter: number, random: Random): number {
  return base + Math.floor(random() * (jitter + 1));
}
