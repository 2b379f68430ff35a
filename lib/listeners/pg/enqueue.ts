import { invalidOption, requireObject } from '../../common/option-checks.js';
import { type Input, rejectUnknownKeys, resolveSpec } from '../../common/option-spec.js';
import { identifier } from '../../common/pg-options.js';
import { type QueueNames, queueNames } from './identifiers.js';
import { insertEvents } from './sql/insert-events.js';
import type { Queryable } from './sql/types.js';

/** An event to enqueue. */
export interface NewEvent {
  /** Selects the handler. */
  type: string;
  /** Events with the same type and key run one at a time, in enqueue order (for example an entity id). */
  key?: string | number;
  /** Any JSON-serialisable value. @default null */
  payload?: unknown;
  /** Do not run before this time. */
  runAt?: Date;
}

export const queueDefaults = { schema: 'steward', table: 'events' };

/** Where a queue lives; the same two options in `enqueue()` and `pgEventQueue()`. */
export const queueLocationSpec = {
  /** Schema of the queue tables. @default 'steward' */
  schema: identifier(queueDefaults.schema),
  /** Queue table name; the dead-letter table is `<table>_dead`. @default 'events' */
  table: identifier(queueDefaults.table),
};

/** Where `enqueue()` writes: the queue's schema and table. */
export type EnqueueOptions = Input<typeof queueLocationSpec>;

const EVENT_KEYS = ['type', 'key', 'payload', 'runAt'];
const namesCache = new Map<string, QueueNames>();

/** Validated names, cached: `enqueue` sits on the caller's hot path. */
export function namesFor(schema = queueDefaults.schema, table = queueDefaults.table): QueueNames {
  const cacheKey = `${schema}\u0000${table}`;
  let names = namesCache.get(cacheKey);
  if (!names) {
    names = queueNames(schema, table);
    namesCache.set(cacheKey, names);
  }
  return names;
}

function toRow(event: unknown, index: number): InsertRow {
  const name = `events[${index}]`;
  requireObject(name, event);
  rejectUnknownKeys(event, EVENT_KEYS, `${name}.`);
  if (typeof event.type !== 'string' || event.type.length === 0)
    throw invalidOption(`${name}.type`, 'a non-empty string', event.type);
  const key = event.key;
  if (key !== undefined && key !== null && typeof key !== 'string' && !Number.isFinite(key))
    throw invalidOption(`${name}.key`, 'a string or a finite number', key);
  const runAt = event.runAt;
  if (runAt !== undefined && (!(runAt instanceof Date) || Number.isNaN(runAt.getTime())))
    throw invalidOption(`${name}.runAt`, 'a valid Date', runAt);
  let payload: string | undefined;
  try {
    payload = JSON.stringify(event.payload ?? null);
  } catch {
    // BigInt values and cycles: reported below like any other unserialisable payload.
  }
  if (payload === undefined)
    throw invalidOption(`${name}.payload`, 'a JSON-serialisable value', event.payload);
  return {
    type: event.type,
    key: key === undefined || key === null ? null : String(key),
    payload,
    runAt: (runAt as Date | undefined) ?? null,
  };
}

type InsertRow = Parameters<typeof insertEvents>[2]['events'][number];

/**
 * Adds one or more events to the queue in a single statement and wakes the consumers with NOTIFY.
 * Pass the caller's transaction client (outbox): the events and the wake-up commit or roll back with
 * the caller's own writes. Resolves with the new event ids, in order.
 */
export async function enqueue(
  db: Queryable,
  events: NewEvent | NewEvent[],
  options: EnqueueOptions = {},
): Promise<string[]> {
  const { schema, table } = resolveSpec(queueLocationSpec, options, 'options');
  const names = namesFor(schema, table);
  const list = Array.isArray(events) ? events : [events];
  if (list.length === 0) return [];
  return insertEvents(db, names, { events: list.map(toRow) });
}
