import type { ServicesSnapshot } from './service-status.js';

/** One HTTP worker in `/status`, as the primary's handle of it knows it. */
export interface WorkerStatus {
  id: number;
  pid: number;
  /** The worker handle's state (`booting`, `ready`, `draining`, …). */
  state: string;
  /** Milliseconds since the worker was forked. */
  age: number;
  requests: number;
  inFlight: number;
  rss: number;
  heapUsed: number;
  /** Epoch ms of the last heartbeat, or null before the first. */
  lastHeartbeatAt: number | null;
  /** Why the worker is being retired, or null. */
  retireReason: string | null;
}

/** The `/status` document of a control server: the process answering, and the services it knows. */
export interface HostStatusDocument {
  pid: number;
  /** Epoch ms when the document was made. */
  at: number;
  /** Milliseconds since the answering process started. */
  uptime: number;
  stopping: boolean;
  /** The services as their host last reported them; null before the first report. */
  services: ServicesSnapshot | null;
}

/**
 * The cluster primary's `/status` document: made by its control server, read by `cluster-steward status`.
 * The one declaration of that shape, so the writer and the reader cannot drift apart.
 */
export interface StatusDocument extends HostStatusDocument {
  workers: WorkerStatus[];
  /** Present when the services dispatch events to the workers (see docs/valve.md). */
  valve?: ValveStatus;
}

/** The valve as `/status` shows it. */
export interface ValveStatus {
  state: 'open' | 'closed';
  limit: number;
  inFlight: number;
  waiting: number;
  dispatchedNames: string[];
  /** Dispatched names no ready worker registered a handler for. */
  unhandled: string[];
  workers: {
    id: number;
    state: 'open' | 'closed';
    limit: number;
    inFlight: number;
    handled: number;
    loopDelayMs: number | null;
    utilization: number | null;
    /** Share of the last interval the worker waited for a CPU; `null` before its first report or where unknown. */
    cpuWait: number | null;
  }[];
}
