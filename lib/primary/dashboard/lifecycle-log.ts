import type { Bindings, ChildLoggerOptions, Logger } from 'pino';
import { REDACTED, redactDeep } from '../../common/logger.js';

/** One `subject:action[:phase]` log event as the dashboard shows it. */
export interface LifecycleEvent {
  /** Increasing from 1 in this primary: a reader asks for the events after the last one it saw. */
  seq: number;
  /** Epoch ms. */
  at: number;
  level: 'info' | 'warn' | 'error' | 'fatal';
  /** The event name, e.g. `worker:recycle:done`. */
  event: string;
  /** The log line's own fields plus the child logger's `worker`, `workerPid` and `service` bindings. */
  fields: Record<string, unknown>;
}

/** The lifecycle log keeps this many events by default: what the dashboard lists. */
export const LIFECYCLE_CAPACITY = 200;

/** `subject:action[:phase]` at the start of a message; the rest of the message (if any) is free text. */
const EVENT_NAME = /^[a-z][a-z0-9-]*(?::[a-z0-9-]+)+/;
/** Bindings worth keeping: they say which process the event is about. */
const KEPT_BINDINGS = ['worker', 'workerPid', 'service', 'siblingPid'] as const;
const RECORDED_LEVELS = new Set<string>(['info', 'warn', 'error', 'fatal']);
/** A field value longer than this is cut: the ring must stay small whatever a caller logs. */
const MAX_TEXT = 2_000;
/** Keys whose values are secrets whatever they contain (pino's redaction paths do not apply here). */
const SECRET_KEY = /password|token|authorization|secret/i;

/**
 * A ring buffer of the primary's last lifecycle events. Recording costs one array write per event;
 * nothing is serialised for readers until one asks (`after`).
 */
export class LifecycleLog {
  readonly capacity: number;
  readonly #ring: LifecycleEvent[] = [];
  #next = 0;
  #seq = 0;

  constructor(capacity = LIFECYCLE_CAPACITY) {
    this.capacity = capacity;
  }

  /** The sequence number of the newest event (0 before the first). */
  get lastSeq(): number {
    return this.#seq;
  }

  record(level: LifecycleEvent['level'], event: string, fields: Record<string, unknown>): void {
    const entry: LifecycleEvent = { seq: ++this.#seq, at: Date.now(), level, event, fields };
    if (this.#ring.length < this.capacity) this.#ring.push(entry);
    else this.#ring[this.#next] = entry;
    this.#next = (this.#next + 1) % this.capacity;
  }

  /** The kept events with a `seq` above `seq`, oldest first. */
  after(seq = 0): LifecycleEvent[] {
    const ordered =
      this.#ring.length < this.capacity
        ? this.#ring
        : [...this.#ring.slice(this.#next), ...this.#ring.slice(0, this.#next)];
    return ordered.filter((entry) => entry.seq > seq);
  }
}

/**
 * A logger that behaves as `logger` and also records every info-or-higher line whose message starts
 * with an event name into `log`, through every child it creates. Levels the logger filters out are
 * still recorded (a dashboard shows lifecycle events whatever the log level); debug and trace never.
 */
export function recordLifecycle(logger: Logger, log: LifecycleLog): Logger {
  return new Proxy(logger, {
    get(target, property, receiver) {
      if (property === 'child') {
        return (bindings: Bindings, options?: ChildLoggerOptions) =>
          recordLifecycle(target.child(bindings, options), log);
      }
      const value = Reflect.get(target, property, receiver);
      if (typeof property !== 'string' || !RECORDED_LEVELS.has(property) || typeof value !== 'function')
        return value;
      return (...args: unknown[]) => {
        captureEvent(target, log, property as LifecycleEvent['level'], args);
        return (value as (...a: unknown[]) => void).apply(target, args);
      };
    },
  });
}

function captureEvent(logger: Logger, log: LifecycleLog, level: LifecycleEvent['level'], args: unknown[]) {
  const [first, second] = args;
  const message = typeof first === 'string' ? first : typeof second === 'string' ? second : undefined;
  const name = message === undefined ? null : EVENT_NAME.exec(message);
  if (!name) return;
  const fields: Record<string, unknown> = {};
  const bindings = logger.bindings();
  for (const key of KEPT_BINDINGS) if (bindings[key] !== undefined) fields[key] = bindings[key];
  if (first !== null && typeof first === 'object') {
    for (const [key, value] of Object.entries(first))
      fields[key] = SECRET_KEY.test(key) ? REDACTED : plainValue(value, 0);
  }
  const rest = message!.slice(name[0].length).replace(/^:\s*/, '');
  if (rest) fields.detail = plainValue(rest, 0);
  log.record(level, name[0], redactDeep(fields));
}

/** A JSON-safe, bounded copy: errors become `{ name, code, message, stack }`, long strings are cut. */
function plainValue(value: unknown, depth: number): unknown {
  if (typeof value === 'string') return value.length > MAX_TEXT ? `${value.slice(0, MAX_TEXT)}…` : value;
  if (typeof value === 'bigint') return value.toString();
  if (value === null || typeof value !== 'object') return typeof value === 'function' ? undefined : value;
  if (depth >= 3) return '[object]';
  if (value instanceof Error) {
    const { name, message, stack } = value;
    const code = (value as { code?: unknown }).code;
    return plainValue({ name, code, message, stack }, depth);
  }
  if (Array.isArray(value)) return value.slice(0, 20).map((item) => plainValue(item, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [key, item] of Object.entries(value).slice(0, 30))
    out[key] = SECRET_KEY.test(key) ? REDACTED : plainValue(item, depth + 1);
  return out;
}
