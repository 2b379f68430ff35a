import type { Logger } from 'pino';
import type { Random } from '../common/backoff.js';
import type { ResolvedOptions } from '../options.js';
import {
  createPolicies,
  type PushedLimit,
  type RecyclePolicy,
  type WorkerLimit,
} from './recycle-policies/index.js';
import type { WorkerHandle } from './worker-handle.js';
import type { PoolView } from './worker-pool.js';

/** A worker's own request for recycling that is not a policy of ours (throng's `disconnect()`). */
export const WORKER_REQUEST = 'worker-request';

/** What is kept per live worker: its drawn limits, and the one it enforces itself. */
interface Tracked {
  limits: WorkerLimit[];
  pushed: PushedLimit | undefined;
}

/** Where a due worker goes: the recycler's queue. */
export type OnDue = (handle: WorkerHandle, reason: string) => void;

/**
 * Decides when a worker is due for recycling, whoever forks it: draws each worker's limits at fork
 * (jitter from `random`), pushes the request limit to the worker once it is ready, runs every limit on
 * each heartbeat past `minLifetime`, and passes on the worker's own recycle request.
 */
export class RecycleTriggers {
  readonly policies: readonly RecyclePolicy[];
  readonly #minLifetime: number;
  readonly #random: Random;
  readonly #onDue: OnDue;
  readonly #tracked = new Map<number, Tracked>();

  constructor(pool: PoolView, recycle: ResolvedOptions['recycle'], random: Random, onDue: OnDue) {
    this.policies = createPolicies(recycle);
    this.#minLifetime = recycle.minLifetime;
    this.#random = random;
    this.#onDue = onDue;
    pool.on('worker:forked', (handle) => this.#attach(handle));
    pool.on('worker:ready', (handle) => this.#sendRequestLimit(handle));
    pool.on('worker:exit', (handle) => this.#tracked.delete(handle.id));
  }

  /** Logs the policies in force (`cluster:recycle:configured`), when there is any. */
  logConfigured(logger: Logger, recycle: ResolvedOptions['recycle']): void {
    if (this.policies.length === 0) return;
    const { concurrency, drainTimeout, minLifetime } = recycle;
    const policies = this.policies.map((policy) => policy.name);
    logger.info({ policies, concurrency, drainTimeout, minLifetime }, 'cluster:recycle:configured');
  }

  /** The last heartbeat's count, or the pushed limit when the worker reported reaching it since. */
  requestsOf(handle: WorkerHandle): number {
    const pushed = this.#tracked.get(handle.id)?.pushed;
    return Math.max(handle.requests, pushed?.reached ? pushed.maxRequests : 0);
  }

  #attach(handle: WorkerHandle): void {
    const limits = this.policies.map((policy) => policy.forWorker(this.#random));
    const pushed = limits.find((limit) => limit.pushed !== undefined)?.pushed;
    this.#tracked.set(handle.id, { limits, pushed });
    if (limits.length > 0) {
      handle.logger.debug(
        { limits: Object.assign({}, ...limits.map((l) => l.limits)) },
        'worker:recycle:limits',
      );
    }
    handle.channel.on('worker:heartbeat', () => this.#evaluate(handle));
    // Only ever the worker on whose channel the request arrived: a worker cannot name another one.
    handle.channel.on('worker:recycle-request', (message) => this.#onWorkerRequest(handle, message.reason));
  }

  /** Sent once ready, when the agent listens for it; a worker past the limit already answers at once. */
  #sendRequestLimit(handle: WorkerHandle): void {
    const pushed = this.#tracked.get(handle.id)?.pushed;
    if (pushed) handle.channel.send('worker:recycle-limit', { maxRequests: pushed.maxRequests });
  }

  /** `max-requests` is the agent reporting the pushed limit; anything else is the application's own. */
  #onWorkerRequest(handle: WorkerHandle, reason: string): void {
    const pushed = this.#tracked.get(handle.id)?.pushed;
    if (reason === 'max-requests' && pushed) {
      pushed.reached = true;
      this.#evaluate(handle);
      return;
    }
    handle.logger.info({ reason }, 'worker:recycle:requested');
    this.#onDue(handle, WORKER_REQUEST);
  }

  /** Runs every limit on the latest figures (all of them: the memory limit counts consecutive samples). */
  #evaluate(handle: WorkerHandle): void {
    const tracked = this.#tracked.get(handle.id);
    if (!tracked || tracked.limits.length === 0 || handle.state !== 'ready') return;
    const sample = { age: handle.age, requests: handle.requests, rss: handle.rss, heapUsed: handle.heapUsed };
    const reasons = tracked.limits.map((limit) => limit.check(sample));
    const reason = reasons.find((candidate) => candidate !== null);
    if (reason && sample.age >= this.#minLifetime) this.#onDue(handle, reason);
  }
}
