import type { Worker } from 'node:cluster';
import type { Logger } from 'pino';
import { IpcChannel, logDroppedMessages } from '../common/ipc.js';
import type { SerializedError } from '../errors.js';

/** Explicit worker lifecycle, as seen by the primary. Every transition is logged as `worker:<state>`. */
export type WorkerState = 'booting' | 'ready' | 'draining' | 'dead';

/** How a worker process ended: its exit code, or the signal that killed it. */
export interface WorkerExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** One HTTP worker: its IPC channel, state, heartbeat figures and the promises a supervisor waits on. */
export class WorkerHandle {
  readonly worker: Worker;
  readonly channel: IpcChannel;
  readonly id: number;
  readonly pid: number;
  readonly forkedAt = Date.now();
  readonly logger: Logger;
  state: WorkerState = 'booting';
  readyAt: number | null = null;
  /** Why the worker is draining (`recycle`, `shutdown`, a policy name), or null. */
  retireReason: string | null = null;
  requests = 0;
  inFlight = 0;
  rss = 0;
  heapUsed = 0;
  lastHeartbeatAt: number | null = null;
  bootError: SerializedError | null = null;
  /** The uncaught error the worker reported just before it died. */
  crashError: SerializedError | null = null;
  /** Addresses of the servers the start function returned or tracked. */
  addresses: string[] = [];
  exit: WorkerExit | null = null;
  /** Resolves when the worker has exited, whatever the reason. */
  readonly exited: Promise<WorkerExit>;
  #startReported = false;
  #listening = false;
  #onReady: (() => void) | undefined;

  constructor(worker: Worker, logger: Logger) {
    this.worker = worker;
    this.id = worker.id;
    this.pid = worker.process.pid ?? 0;
    this.logger = logger.child({ worker: worker.id, workerPid: this.pid });
    this.channel = new IpcChannel(worker, {
      peerName: `worker ${worker.id}`,
      onDrop: logDroppedMessages(this.logger),
    });
    this.exited = new Promise((resolve) => {
      // 'exit', not 'disconnect': a worker can die without ever disconnecting (throng's revive bug).
      worker.once('exit', (code, signal) => {
        this.exit = { code, signal: signal as NodeJS.Signals | null };
        this.transition('dead', { code, signal });
        this.channel.close('worker exited');
        resolve(this.exit);
      });
    });
    worker.on('listening', () => {
      this.#listening = true;
      this.#maybeReady();
    });
    this.channel.on('worker:ready', (message) => {
      this.addresses = message.addresses;
      this.#startReported = true;
      // A worker that never called listen() (a background job worker) is ready when its start returned.
      if (message.listens === false) this.#listening = true;
      this.#maybeReady();
    });
    this.channel.on('worker:boot-failed', (message) => {
      this.bootError = message.error;
    });
    this.channel.on('worker:uncaught', (message) => {
      this.crashError = message.error;
    });
    this.channel.on('worker:heartbeat', (message) => {
      this.requests = message.requests;
      this.inFlight = message.inFlight;
      this.rss = message.rss;
      this.heapUsed = message.heapUsed;
      this.lastHeartbeatAt = Date.now();
    });
  }

  get age(): number {
    return Date.now() - this.forkedAt;
  }

  /**
   * Resolves once the start function returned and the primary saw the worker listen, so the cluster's
   * round-robin handle already routes connections to it.
   */
  whenReady(): Promise<void> {
    if (this.state === 'ready') return Promise.resolve();
    return new Promise((resolve) => {
      const previous = this.#onReady;
      this.#onReady = () => {
        previous?.();
        resolve();
      };
    });
  }

  /** Moves to `state` (never out of `dead`) and logs `worker:<state>` with `fields`. */
  transition(state: WorkerState, fields: Record<string, unknown> = {}): void {
    if (this.state === state || this.state === 'dead') return;
    this.state = state;
    if (state === 'ready') this.readyAt = Date.now();
    const level = state === 'dead' && !this.retireReason ? 'warn' : 'info';
    this.logger[level]({ state, age: this.age, requests: this.requests, ...fields }, `worker:${state}`);
  }

  #maybeReady(): void {
    if (!this.#startReported || !this.#listening || this.state !== 'booting') return;
    this.transition('ready', { bootMs: this.age, addresses: this.addresses });
    this.#onReady?.();
    this.#onReady = undefined;
  }
}
