import type { RecyclePolicy, WorkerLimit, WorkerSample } from './types.js';

export interface MemoryLimits {
  maxRss: number | undefined;
  maxHeapUsed: number | undefined;
  /** Consecutive samples over a limit before the worker is retired. */
  checks: number;
}

/**
 * Retires a worker whose resident memory or V8 heap stays over its limit for `checks` heartbeats in a
 * row. One sample over the limit is often a burst that garbage collection takes back; a worker that
 * stays over it is leaking or fragmented, and a fresh process is the cure.
 */
export class MemoryPolicy implements RecyclePolicy {
  readonly name = 'memory';
  readonly #limits: MemoryLimits;

  constructor(limits: MemoryLimits) {
    this.#limits = limits;
  }

  forWorker(): WorkerLimit {
    const { maxRss, maxHeapUsed, checks } = this.#limits;
    let rssOver = 0;
    let heapOver = 0;
    const limits: Record<string, number> = {};
    if (maxRss !== undefined) limits.maxRss = maxRss;
    if (maxHeapUsed !== undefined) limits.maxHeapUsed = maxHeapUsed;
    return {
      limits,
      check: (sample: WorkerSample) => {
        rssOver = maxRss !== undefined && sample.rss > maxRss ? rssOver + 1 : 0;
        heapOver = maxHeapUsed !== undefined && sample.heapUsed > maxHeapUsed ? heapOver + 1 : 0;
        if (rssOver >= checks) return 'max-rss';
        if (heapOver >= checks) return 'max-heap-used';
        return null;
      },
    };
  }
}
