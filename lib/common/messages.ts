import type { MetricObjectWithValues, MetricValue } from 'prom-client';
import type { SerializedError } from '../errors.js';
import type { ServicesSnapshot } from './service-status.js';

/**
 * Every message cluster-steward sends between its processes carries this tag, so application messages
 * (anything without it) pass through `process.send` untouched.
 */
export const IPC_NAMESPACE = 'cluster-steward';

/** Process-level numbers a worker reports with each heartbeat. */
export interface WorkerHeartbeat {
  /** Requests started since the worker booted. */
  requests: number;
  inFlight: number;
  rss: number;
  heapUsed: number;
}

/** What a worker reports to the valve: its event loop's load over the last interval and its open requests. */
export interface ValveSignal {
  /** 99th percentile of the event-loop delay over the interval, in ms. */
  loopDelayMs: number;
  /** Event-loop utilization over the interval (0..1). */
  utilization: number;
  /** Share of the interval the event loop's thread waited for a CPU (Linux), or `null` where unknown. */
  cpuWait: number | null;
  /** HTTP requests in flight right now. */
  httpInFlight: number;
  /** HTTP requests started during the interval. */
  httpRequests: number;
}

/** What the primary pushes to every worker: the services status with the time it was taken. */
export interface StatusUpdate {
  services: ServicesSnapshot | null;
  /** Epoch ms when the primary sent it. */
  sentAt: number;
}

/** The message catalogue: type → payload. One place to read what crosses a process boundary. */
export interface MessagePayloads {
  // worker → primary
  /**
   * The agent listens from now on. Node drops IPC messages that arrive before a worker has a 'message'
   * listener (while it still loads its modules), so the primary sends the status now, and repeats a drain
   * ordered meanwhile.
   */
  'worker:hello': Record<string, never>;
  /** `listens: false`: the start function returned without calling `listen()` (a background worker). */
  'worker:ready': { addresses: string[]; listens?: boolean };
  'worker:boot-failed': { error: SerializedError };
  'worker:heartbeat': WorkerHeartbeat;
  'worker:recycle-request': { reason: string };
  /** The error that is about to kill the worker (uncaught exception), so the primary logs it with its stack. */
  'worker:uncaught': { error: SerializedError };
  /** One of the agent's own lines, written by the primary with the worker's pid (see `worker/worker-log.ts`). */
  'worker:log': { level: 'info' | 'warn' | 'error'; fields: Record<string, unknown>; msg: string };
  // primary → worker
  'worker:drain': { timeout: number; reason: string };
  /** The request count at which the worker asks to be recycled (drawn per worker by the primary). */
  'worker:recycle-limit': { maxRequests: number };
  'status:update': StatusUpdate;
  // services host (sibling) ↔ primary
  'services:status': { snapshot: ServicesSnapshot };
  'services:stop': { timeout: number };
  /** The sibling could not load the services module: a configuration error, sent right before it exits 78. */
  'services:load-failed': { error: SerializedError };
  /** One log line of the sibling, written by the primary to its own destination (see `log-relay.ts`). */
  'log:line': { line: string };
  // primary → any child, answered by 'reply'
  'metrics:collect': Record<string, never>;
  // worker → primary once drained, answered by 'reply': its exact final metrics (prom-client JSON)
  'metrics:final': { metrics: unknown[] };
  // dispatch of events to the workers' handlers (see docs/valve.md)
  /** worker → primary, before 'worker:ready': the event names its start function registered with `ctx.handle`. */
  'worker:handlers': { names: string[] };
  /** worker → primary, every valve interval: the load signals the adaptive limit is computed from. */
  'valve:signal': ValveSignal;
  /** services host → primary, answered by 'reply' once a worker's handler settled: one event to run. */
  'dispatch:event': { name: string; event: unknown };
  /** primary → worker, answered by 'reply' with the handler's outcome. */
  'dispatch:run': { name: string; event: unknown };
  /** services host → primary once the services module is loaded: the names its listeners dispatch. */
  'dispatch:names': { names: string[] };
  /** primary → services host on every change: how many events the workers take at once now. */
  'valve:state': { limit: number; inFlight: number; loadLimit: number };
  // correlated answer to any request
  reply: { ok: boolean; result?: unknown; error?: SerializedError };
}

export type MessageType = keyof MessagePayloads;

/** One metric family as prom-client's `getMetricsAsJSON()` returns it (what crosses IPC). */
export type MetricJson = MetricObjectWithValues<MetricValue<string>>;

/**
 * The requests answered by a `reply`: request type → the result its handler returns and `request()`
 * resolves with. The result comes from another process: the metrics module still checks every family
 * before merging it.
 */
export interface ReplyResults {
  /** This process's metrics (library and application registries). */
  'metrics:collect': MetricJson[];
  /** Whether the primary stored the final metrics (false for an unknown or retired process). */
  'metrics:final': boolean;
  /** The dispatched event ran in a worker (a failure rejects the request). */
  // biome-ignore lint/suspicious/noConfusingVoidType: the reply carries no value, only its arrival.
  'dispatch:event': void;
  // biome-ignore lint/suspicious/noConfusingVoidType: the reply carries no value, only its arrival.
  'dispatch:run': void;
}

export type RequestType = keyof ReplyResults;

/** What `request(type)` resolves with; a message that is not a request is never answered. */
export type ReplyOf<T extends MessageType> = T extends RequestType ? ReplyResults[T] : never;

export type Message<T extends MessageType = MessageType> = {
  [K in T]: { ns: typeof IPC_NAMESPACE; type: K; seq?: number; ack?: number } & MessagePayloads[K];
}[T];

type Validator = (message: Record<string, unknown>) => boolean;

const isCount = (value: unknown): boolean => Number.isSafeInteger(value) && (value as number) >= 0;
const isFiniteNumber = (value: unknown): boolean => typeof value === 'number' && Number.isFinite(value);
const isShortString = (value: unknown, max = 1024): boolean =>
  typeof value === 'string' && value.length <= max;
const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);
const isError = (value: unknown): boolean =>
  isObject(value) && isShortString(value.name) && isShortString(value.message, 64 * 1024);

const isNameList = (value: unknown): boolean =>
  Array.isArray(value) && value.length <= 1000 && value.every((name) => isShortString(name, 256));

function isServicesSnapshot(value: unknown): boolean {
  if (!isObject(value) || !Array.isArray(value.services) || value.services.length > 1000) return false;
  return (
    isShortString(value.role, 32) &&
    isCount(value.pid) &&
    isFiniteNumber(value.at) &&
    value.services.every((s) => isObject(s) && isShortString(s.name, 256) && isShortString(s.state, 32))
  );
}

/** Shape checks per type, applied on receipt (the dispatch table of validators). */
const validators: { [K in MessageType]: Validator } = {
  'worker:hello': () => true,
  'worker:ready': (m) =>
    Array.isArray(m.addresses) &&
    m.addresses.length <= 64 &&
    m.addresses.every((a) => isShortString(a)) &&
    (m.listens === undefined || typeof m.listens === 'boolean'),
  'worker:boot-failed': (m) => isError(m.error),
  'worker:heartbeat': (m) =>
    isCount(m.requests) && isCount(m.inFlight) && isCount(m.rss) && isCount(m.heapUsed),
  'worker:recycle-request': (m) => isShortString(m.reason, 256),
  'worker:uncaught': (m) => isError(m.error),
  'worker:log': (m) =>
    (m.level === 'info' || m.level === 'warn' || m.level === 'error') &&
    isObject(m.fields) &&
    Object.keys(m.fields).length <= 32 &&
    isShortString(m.msg, 256),
  'worker:drain': (m) => isCount(m.timeout) && isShortString(m.reason, 256),
  'worker:recycle-limit': (m) => isCount(m.maxRequests) && (m.maxRequests as number) >= 1,
  'status:update': (m) => isFiniteNumber(m.sentAt) && (m.services === null || isServicesSnapshot(m.services)),
  'services:status': (m) => isServicesSnapshot(m.snapshot),
  'services:stop': (m) => isCount(m.timeout),
  'services:load-failed': (m) => isError(m.error),
  'log:line': (m) => isShortString(m.line, 256 * 1024),
  'metrics:collect': (m) => isCount(m.seq),
  // Only the envelope here: the metrics module checks every family before merging it.
  'metrics:final': (m) => isCount(m.seq) && Array.isArray(m.metrics) && m.metrics.length <= 10_000,
  'worker:handlers': (m) => isNameList(m.names),
  'valve:signal': (m) =>
    isFiniteNumber(m.loopDelayMs) &&
    isFiniteNumber(m.utilization) &&
    (m.utilization as number) >= 0 &&
    (m.cpuWait === null || (isFiniteNumber(m.cpuWait) && (m.cpuWait as number) >= 0)) &&
    isCount(m.httpInFlight) &&
    isCount(m.httpRequests),
  // The event itself is checked by the handler that receives it, as any event from a broker is.
  'dispatch:event': (m) => isCount(m.seq) && isShortString(m.name, 256),
  'dispatch:run': (m) => isCount(m.seq) && isShortString(m.name, 256),
  'dispatch:names': (m) => isNameList(m.names),
  'valve:state': (m) => isCount(m.limit) && isCount(m.inFlight) && isCount(m.loadLimit),
  reply: (m) => isCount(m.ack) && typeof m.ok === 'boolean' && (m.ok || isError(m.error)),
};

export type DropReason = 'malformed' | 'unknown_type' | 'unexpected_reply';

/** Classifies a received value: ours and valid, ours but invalid, or not ours (left to the application). */
export function inspectMessage(
  value: unknown,
): { kind: 'foreign' } | { kind: 'valid'; message: Message } | { kind: 'invalid'; reason: DropReason } {
  if (!isObject(value) || value.ns !== IPC_NAMESPACE) return { kind: 'foreign' };
  const type = value.type;
  if (typeof type !== 'string' || !Object.hasOwn(validators, type))
    return { kind: 'invalid', reason: 'unknown_type' };
  if (value.seq !== undefined && !isCount(value.seq)) return { kind: 'invalid', reason: 'malformed' };
  const valid = validators[type as MessageType](value);
  return valid
    ? { kind: 'valid', message: value as unknown as Message }
    : { kind: 'invalid', reason: 'malformed' };
}

/** Process-wide count of dropped messages by reason, read by the metrics module. */
export const droppedMessages: Record<DropReason, number> = {
  malformed: 0,
  unknown_type: 0,
  unexpected_reply: 0,
};
