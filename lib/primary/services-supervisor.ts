import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import type { IpcChannel } from '../common/ipc.js';
import type { ServicesSnapshot } from '../services/types.js';

export interface ServicesSupervisorEvents {
  /** The snapshot changed (a push from the host, or the host died): the primary re-broadcasts it. */
  change: [];
  /** A sibling was forked; the cluster metrics take its final report through this channel. */
  'sibling:forked': [IpcChannel];
  /**
   * The services module cannot be loaded (missing, throws at import, no `defineServices` export, invalid
   * services): retrying cannot fix it, so the primary exits with EX_CONFIG (78) instead of re-forking.
   */
  'config-error': [Error];
}

/**
 * The primary's handle on the services host, wherever it runs: `services-in-process.ts`
 * (`placement: 'primary'`) or `services-sibling.ts` (one forked services process).
 */
export interface ServicesSupervisor extends EventEmitter<ServicesSupervisorEvents> {
  start(): Promise<void>;
  /** The latest truthful snapshot, or null before the host first reported. */
  snapshot(): ServicesSnapshot | null;
  /** Graceful restart of the services host only (SIGUSR2); workers are not touched. */
  restart(reason: string): Promise<void>;
  /** Stops the services within `timeout` ms; true when every service settled cleanly. */
  stop(timeout: number): Promise<boolean>;
  /** Forced stop (second SIGINT): kills a sibling at once; services in the primary end with the process. */
  kill(): void;
  /** The live sibling's IPC channel (metrics are collected through it); undefined in the primary. */
  readonly channel?: IpcChannel | undefined;
}

/**
 * What both hosts share: one restart at a time (a second SIGUSR2 during a restart joins it), logged
 * `services:restart:start` and `services:restart:done`.
 */
export abstract class RestartableServices
  extends EventEmitter<ServicesSupervisorEvents>
  implements ServicesSupervisor
{
  readonly #logger: Logger;
  #restarting: Promise<void> | undefined;

  constructor(logger: Logger) {
    super();
    this.#logger = logger;
  }

  abstract start(): Promise<void>;
  abstract snapshot(): ServicesSnapshot | null;
  abstract stop(timeout: number): Promise<boolean>;
  abstract kill(): void;

  restart(reason: string): Promise<void> {
    this.#restarting ??= this.#restart(reason).finally(() => {
      this.#restarting = undefined;
    });
    return this.#restarting;
  }

  /** The restart under way, if any. */
  protected get restarting(): Promise<void> | undefined {
    return this.#restarting;
  }

  /** False once stopping: nothing is restarted then. */
  protected abstract canRestart(): boolean;
  /** Stops the running host and starts a new one; false when the new one could not start. */
  protected abstract replaceHost(): Promise<boolean>;
  /** Which process hosts the services, for the restart's log lines. */
  protected abstract hostFields(): Record<string, unknown>;

  async #restart(reason: string): Promise<void> {
    if (!this.canRestart()) return;
    const started = Date.now();
    this.#logger.info({ reason, ...this.hostFields() }, 'services:restart:start');
    if (!(await this.replaceHost())) return;
    this.#logger.info({ reason, ms: Date.now() - started, ...this.hostFields() }, 'services:restart:done');
  }
}
