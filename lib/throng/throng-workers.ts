import cluster, { type Worker } from 'node:cluster';
import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import type { StatusUpdate } from '../common/messages.js';
import type { ResolvedOptions } from '../options.js';
import type { WorkerHandle } from '../primary/worker-handle.js';
import { adoptWorker, exitCause, type PoolView, type WorkerPoolEvents } from '../primary/worker-pool.js';

/**
 * The workers throng forks, seen as a pool: each one gets a `WorkerHandle` (state machine, IPC channel,
 * heartbeat figures) and the same events as the steward pool emits, so the recycling policies, cluster
 * metrics and the control server work unchanged. throng alone decides when to fork.
 */
export class ThrongWorkers extends EventEmitter<WorkerPoolEvents> implements PoolView {
  readonly #options: ResolvedOptions;
  readonly #logger: Logger;
  readonly #statusUpdate: () => StatusUpdate;
  readonly #handles = new Map<number, WorkerHandle>();
  #stopping = false;

  constructor(options: ResolvedOptions, logger: Logger, statusUpdate: () => StatusUpdate) {
    super();
    this.#options = options;
    this.#logger = logger;
    this.#statusUpdate = statusUpdate;
  }

  get handles(): WorkerHandle[] {
    return [...this.#handles.values()];
  }

  get stopping(): boolean {
    return this.#stopping;
  }

  /** Adopts every worker forked from now on; call before throng's first fork. */
  watch(): void {
    cluster.on('fork', (worker) => this.#adopt(worker));
  }

  /** From now on exits are shutdown exits and nothing is recycled. */
  markStopping(): void {
    this.#stopping = true;
  }

  broadcastStatus(): void {
    const update = this.#statusUpdate();
    for (const handle of this.#handles.values()) handle.channel.send('status:update', update);
  }

  /** throng re-forks at once whatever the cause, so a hung boot is killed rather than waited on forever. */
  #adopt(worker: Worker): void {
    const handle = adoptWorker(worker, this.#logger, this.#options.bootTimeout, this.#statusUpdate);
    this.#handles.set(handle.id, handle);
    void handle.whenReady().then(() => this.emit('worker:ready', handle));
    void handle.exited.then((exit) => {
      this.#handles.delete(handle.id);
      this.emit('worker:exit', handle, exitCause(handle, exit));
    });
    this.emit('worker:forked', handle);
  }
}
