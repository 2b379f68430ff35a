import type { Server } from 'node:net';
import type { Logger } from 'pino';
import type { ClusterStatus } from './cluster-status.js';

/**
 * A handler for events dispatched to the workers. It receives the event as JSON (a PostgreSQL queue
 * event, an AMQP message) and a signal that aborts when this worker starts draining; resolving settles
 * the event as handled at its source, a rejection fails it there (retried per the listener's options).
 */
export type WorkerEventHandler = (event: unknown, signal: AbortSignal) => unknown;

/** The third argument of the start function: what a worker may use beyond throng's `(id, disconnect)`. */
export interface WorkerContext {
  /** The cluster worker id (1, 2, ...; replacements get new ids). */
  readonly id: number;
  /** pino child logger bound with `role: 'worker'`, the worker id and pid; built on first access. */
  readonly logger: Logger;
  /** Aborts when this worker starts draining. */
  readonly signal: AbortSignal;
  /** Registers a server for request counting and graceful drain (returned servers are tracked anyway). */
  track(server: Server): void;
  /** The latest services status pushed by the primary. */
  status(): ClusterStatus;
  /**
   * Registers the handler of the events a listener dispatches to the workers under `name` (see
   * docs/valve.md). Call it while the start function runs; the event settles at its source from the
   * handler's outcome.
   */
  handle(name: string, handler: WorkerEventHandler): void;
}

/**
 * The application's start function, called once per worker. Signature-compatible with throng's
 * `worker(id, disconnect)`; may return (a promise of) the server or servers it created.
 */
export type WorkerStart = (id: number, disconnect: () => void, context: WorkerContext) => unknown;
