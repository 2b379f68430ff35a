import type { Logger } from 'pino';
import type { EventLoopWatchdog } from '../common/event-loop-watchdog.js';
import { coerceError } from '../errors.js';
import { advisoryLockLeases } from '../listeners/pg/singleton-lease.js';
import type { ResolvedOptions } from '../options.js';
import { loadServices } from '../services/load-services.js';
import { ServiceHost } from '../services/service-host.js';
// The service metric families observe every record of this process from its first event.
import '../services/service-metrics.js';
import type { ServicesSnapshot } from '../services/types.js';
import { RestartableServices } from './services-supervisor.js';

/** `placement: 'primary'`: the same host, in this process, started before any worker is forked. */
export class InProcessServices extends RestartableServices {
  readonly #options: ResolvedOptions;
  readonly #logger: Logger;
  #host: ServiceHost | undefined;
  #last: ServicesSnapshot | null = null;
  readonly #eventLoop: EventLoopWatchdog | undefined;

  constructor(options: ResolvedOptions, logger: Logger, eventLoop: EventLoopWatchdog | undefined) {
    super(logger);
    this.#options = options;
    this.#logger = logger;
    this.#eventLoop = eventLoop;
  }

  async start(): Promise<void> {
    const services = await loadServices(this.#options.services!);
    this.#host = new ServiceHost(services, {
      role: 'primary',
      logger: this.#logger,
      leases: advisoryLockLeases,
      ...(this.#eventLoop ? { eventLoop: this.#eventLoop } : {}),
      onSnapshot: (snapshot) => {
        this.#last = snapshot;
        this.emit('change');
      },
    });
    this.#host.start();
  }

  snapshot(): ServicesSnapshot | null {
    return this.#host?.snapshot() ?? this.#last;
  }

  protected canRestart(): boolean {
    return true;
  }

  protected hostFields(): Record<string, unknown> {
    return {};
  }

  protected async replaceHost(): Promise<boolean> {
    const old = this.#host;
    this.#host = undefined;
    await old?.stop(this.#options.grace);
    try {
      await this.start();
      return true;
    } catch (error) {
      this.#logger.error({ err: coerceError(error) }, 'services:restart:failed');
      // The module changed on disk into one that cannot load: the same configuration error as at start.
      this.emit('config-error', coerceError(error));
      return false;
    }
  }

  async stop(timeout: number): Promise<boolean> {
    await this.restarting;
    return (await this.#host?.stop(timeout)) ?? true;
  }

  kill(): void {
    // The services live in this process, which is about to exit.
  }
}
