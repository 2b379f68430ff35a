import type { IpcChannel } from '../common/ipc.js';
import type { WorkerEventHandler } from '../common/worker-context.js';
import { StewardError } from '../errors.js';

/**
 * The handlers the start function registered with `ctx.handle(name, handler)`, and the events running in
 * them. Registration closes when the start function returns: the primary learns the names once, before
 * the worker is ready, and routes only those names here.
 */
export class EventHandlers {
  readonly #handlers = new Map<string, WorkerEventHandler>();
  readonly #signal: AbortSignal;
  #sealed = false;
  #inFlight = 0;
  #idle: (() => void)[] = [];
  /** Events admitted and waiting for their turn to start, oldest first. */
  readonly #waiting: (() => void)[] = [];
  #turnScheduled = false;

  constructor(signal: AbortSignal) {
    this.#signal = signal;
  }

  get names(): string[] {
    return [...this.#handlers.keys()];
  }

  get inFlight(): number {
    return this.#inFlight;
  }

  register(name: string, handler: WorkerEventHandler): void {
    if (typeof name !== 'string' || name.length === 0 || name.length > 256)
      throw new StewardError(
        'STEWARD_ERR_INVALID_OPTION',
        `Expected the name given to \`ctx.handle\` to be a string of 1 to 256 characters, got ${JSON.stringify(name)}`,
        { details: { option: 'ctx.handle(name)' } },
      );
    if (typeof handler !== 'function')
      throw new StewardError(
        'STEWARD_ERR_INVALID_OPTION',
        `Expected the handler given to \`ctx.handle('${name}')\` to be a function, got ${typeof handler}`,
        { details: { option: 'ctx.handle(handler)' } },
      );
    if (this.#sealed)
      throw new StewardError(
        'STEWARD_ERR_INVALID_OPTION',
        `\`ctx.handle('${name}')\` was called after the start function returned; register handlers while it runs`,
        { details: { option: 'ctx.handle' } },
      );
    if (this.#handlers.has(name))
      throw new StewardError(
        'STEWARD_ERR_INVALID_OPTION',
        `\`ctx.handle('${name}')\` was called twice; each event name has one handler per worker`,
        { details: { option: 'ctx.handle(name)' } },
      );
    this.#handlers.set(name, handler);
  }

  /** Closes registration and serves `dispatch:run` requests on the channel to the primary. */
  serve(primary: IpcChannel): void {
    this.#sealed = true;
    primary.handle('dispatch:run', (message) => this.#run(message.name, message.event));
  }

  /** Resolves once no handler runs (a draining worker finishes its in-flight events before it exits). */
  idle(): Promise<void> {
    if (this.#inFlight === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idle.push(resolve));
  }

  async #run(name: string, event: unknown): Promise<void> {
    const handler = this.#handlers.get(name);
    if (!handler)
      throw new StewardError('STEWARD_ERR_NO_HANDLER', `worker ${process.pid} has no handler for '${name}'`, {
        details: { name, handlers: this.names },
      });
    this.#inFlight++;
    try {
      await this.#turn();
      await handler(event, this.#signal);
    } finally {
      this.#inFlight--;
      if (this.#inFlight === 0) for (const resolve of this.#idle.splice(0)) resolve();
    }
  }

  /**
   * One handler starts per turn of the event loop. IPC delivers every message of a read in one go, so
   * events admitted together would otherwise run their synchronous parts back to back and hold the HTTP
   * requests that arrived meanwhile for all of them; between two starts, the loop serves its I/O.
   */
  #turn(): Promise<void> {
    return new Promise((resolve) => {
      this.#waiting.push(resolve);
      if (!this.#turnScheduled) {
        this.#turnScheduled = true;
        setImmediate(this.#startNext);
      }
    });
  }

  #startNext = (): void => {
    this.#waiting.shift()?.();
    if (this.#waiting.length > 0) setImmediate(this.#startNext);
    else this.#turnScheduled = false;
  };
}
