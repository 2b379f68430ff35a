import type { Worker } from 'node:cluster';
import type { Logger } from 'pino';
import { IpcChannel, logDroppedMessages } from '../common/ipc.js';
import { linesOfProcess } from '../common/logger.js';
import type { MessagePayloads } from '../common/messages.js';
import type { SerializedError } from '../errors.js';
import { type ChildExit, ChildHandle, type ChildState } from './child-handle.js';

/** Explicit worker lifecycle, as seen by the primary. Every transition is logged as `worker:<state>`. */
export type WorkerState = ChildState;

/** How a worker process ended: its exit code, or the signal that killed it. */
export type WorkerExit = ChildExit;

const WORKER_EVENTS = {
  booting: 'worker:booting',
  ready: 'worker:ready',
  draining: 'worker:draining',
  dead: 'worker:dead',
} as const;

/** What pino writes itself or the worker's bindings hold: a relayed line's fields do not replace them. */
const RESERVED_FIELDS = new Set(['level', 'time', 'pid', 'hostname', 'msg', 'role', 'worker']);

function isSerializedError(value: unknown): value is SerializedError {
  return (
    typeof value === 'object' && value !== null && typeof (value as SerializedError).message === 'string'
  );
}

/** A serialized error as an `Error` again, so pino's serializer writes it as it would have in the worker. */
function errorFrom(serialized: SerializedError): Error {
  const error = new Error(serialized.message);
  // Not enumerable, as on an error's prototype: pino's serializer copies enumerable fields as they are.
  Object.defineProperty(error, 'name', { value: serialized.name, configurable: true, writable: true });
  error.stack = serialized.stack;
  if (serialized.code !== undefined) Object.assign(error, { code: serialized.code });
  return error;
}

/** One HTTP worker: its IPC channel, state, heartbeat figures and the promises a supervisor waits on. */
export class WorkerHandle extends ChildHandle {
  readonly worker: Worker;
  readonly id: number;
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
  #startReported = false;
  #listening = false;
  /** Writes the agent's relayed lines as the worker's own (built with the first one). */
  #workerLines: Logger | undefined;

  constructor(worker: Worker, logger: Logger) {
    const child = logger.child({ worker: worker.id, workerPid: worker.process.pid ?? 0 });
    super({
      process: worker.process,
      // 'exit', not 'disconnect': a worker can die without ever disconnecting (throng's revive bug).
      exitSource: worker,
      logger: child,
      channel: new IpcChannel(worker, { peerName: `worker ${worker.id}`, onDrop: logDroppedMessages(child) }),
      events: WORKER_EVENTS,
      exitReason: 'worker exited',
    });
    this.worker = worker;
    this.id = worker.id;
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
    this.channel.on('worker:log', (message) => this.#writeWorkerLine(message));
    this.channel.on('worker:heartbeat', (message) => {
      this.requests = message.requests;
      this.inFlight = message.inFlight;
      this.rss = message.rss;
      this.heapUsed = message.heapUsed;
      this.lastHeartbeatAt = Date.now();
    });
  }

  /**
   * One of the agent's lines (see `worker/worker-log.ts`), written as the worker would: its pid, `role` and
   * id, this process's logger configuration and destination. Fields cannot overwrite those.
   */
  #writeWorkerLine({ level, fields, msg }: MessagePayloads['worker:log']): void {
    this.#workerLines ??=
      linesOfProcess(this.logger, this.process.pid ?? 0, { role: 'worker', worker: this.id }) ?? this.logger;
    const line: Record<string, unknown> = {};
    for (const [name, value] of Object.entries(fields)) {
      if (RESERVED_FIELDS.has(name)) continue;
      line[name] = name === 'err' && isSerializedError(value) ? errorFrom(value) : value;
    }
    this.#workerLines[level](line, msg);
  }

  protected transitionFields(): Record<string, unknown> {
    return { state: this.state, age: this.age, requests: this.requests };
  }

  /**
   * Ready once the start function returned and the primary saw the worker listen, so the cluster's
   * round-robin handle already routes connections to it.
   */
  #maybeReady(): void {
    if (!this.#startReported || !this.#listening || this.state !== 'booting') return;
    this.transition('ready', { bootMs: this.age, addresses: this.addresses });
  }
}
