import type { BackoffOptions } from '../../common/backoff.js';
import {
  durationOption,
  integerOption,
  invalidOption,
  rejectUnknownKeys,
  requireObject,
} from '../../options.js';
import type { Service, ServiceOptions } from '../../services/types.js';
import {
  backoffOption,
  connectionStringOption,
  nameOption,
  pickServiceOptions,
  SERVICE_KEYS,
} from './common-options.js';
import { namesFor, queueDefaults } from './enqueue.js';
import { type ConsumerSettings, type EventHandler, QueueConsumer } from './queue-consumer.js';

export interface PgEventQueueOptions extends ServiceOptions {
  name: string;
  /** PostgreSQL connection string (the consumer opens a small pool and one LISTEN connection). */
  connectionString: string;
  /** Handler per event type; the consumer claims only these types. */
  handlers: Record<string, EventHandler>;
  /** Schema of the queue tables. @default 'steward' */
  schema?: string;
  /** Queue table name; the dead-letter table is `<table>_dead`. @default 'events' */
  table?: string;
  /**
   * Types whose handler receives only the newest payload of a key; the older pending events of the key
   * are removed when it succeeds (for "something changed, re-read it" events). @default []
   */
  coalesce?: string[];
  /** Handlers running at once (events of one type and key never run together). @default 10 */
  concurrency?: number;
  /** Events claimed per statement; larger batches mean fewer commits. @default 100 */
  batchSize?: number;
  /** Lease of a claimed event, renewed while it is held; a crashed consumer's events run again after it. @default 30000 */
  lease?: number | string;
  /** Runs of an event (the first included) before it moves to the dead-letter table. @default 10 */
  maxAttempts?: number;
  /**
   * A handler still pending after this long (ms or `'30s'`) fails its event with STEWARD_ERR_HANDLER_TIMEOUT
   * (retried with backoff, or dead-lettered at `maxAttempts`), which frees its concurrency slot and its key;
   * its signal aborts and its promise is abandoned. 0 means no limit. @default 30000
   */
  handlerTimeout?: number | string;
  /** Delay before a failed event runs again, doubling per attempt. @default { initialDelay: 1000, maxDelay: 300000, jitter: 0.2 } */
  retry?: Partial<BackoffOptions>;
  /** Claim at least this often without a NOTIFY wake-up (delayed events, lost notifications). @default 2000 */
  pollInterval?: number | string;
  /** How often queue depth and the oldest event's age are measured. @default 5000 */
  depthInterval?: number | string;
  /** Pooled connections for outcomes, lease renewal and depth (claims and LISTEN have one each). @default 4 */
  poolSize?: number;
  /** Apply the schema migrations at start (under an advisory lock). @default true */
  migrate?: boolean;
  /**
   * Backoff while the database is unreachable at start, after a failed claim and of the LISTEN
   * reconnection. The low ceiling makes the consumer claim again within about a second of the
   * database's return, whatever the outage length. @default { initialDelay: 100, maxDelay: 1000, jitter: 0.5 }
   */
  reconnect?: Partial<BackoffOptions>;
  /** Liveness query period of the LISTEN connection. @default 10000 */
  checkInterval?: number | string;
  /** A liveness query or connect slower than this drops the LISTEN connection. @default 5000 */
  checkTimeout?: number | string;
}

export const eventQueueDefaults = {
  ...queueDefaults,
  concurrency: 10,
  batchSize: 100,
  lease: 30_000,
  maxAttempts: 10,
  // A handler that has not settled in 30 s is almost surely hung; without a limit, `concurrency` hung
  // handlers stop the whole queue for good. Handlers doing longer work set their own.
  handlerTimeout: 30_000,
  retry: { initialDelay: 1_000, maxDelay: 300_000, jitter: 0.2 },
  pollInterval: 2_000,
  depthInterval: 5_000,
  poolSize: 4,
  reconnect: { initialDelay: 100, maxDelay: 1_000, jitter: 0.5 },
  checkInterval: 10_000,
  checkTimeout: 5_000,
};

const KEYS = [
  'name',
  'connectionString',
  'handlers',
  'schema',
  'table',
  'coalesce',
  'concurrency',
  'batchSize',
  'lease',
  'maxAttempts',
  'handlerTimeout',
  'retry',
  'pollInterval',
  'depthInterval',
  'poolSize',
  'migrate',
  'reconnect',
  'checkInterval',
  'checkTimeout',
  ...SERVICE_KEYS,
];

function handlersOption(raw: unknown): Record<string, EventHandler> {
  requireObject('handlers', raw);
  const types = Object.keys(raw);
  if (types.length === 0) throw invalidOption('handlers', 'an object with at least one event type', raw);
  for (const type of types) {
    if (typeof raw[type] !== 'function') throw invalidOption(`handlers.${type}`, 'a function', raw[type]);
  }
  return { ...(raw as Record<string, EventHandler>) };
}

function coalesceOption(raw: unknown, handlers: Record<string, EventHandler>): string[] {
  if (raw === undefined) return [];
  if (!Array.isArray(raw) || !raw.every((type) => typeof type === 'string'))
    throw invalidOption('coalesce', 'an array of event types', raw);
  for (const type of raw) {
    if (!(type in handlers))
      throw invalidOption('coalesce', `event types that have a handler (${type} has none)`, raw);
  }
  return [...new Set(raw as string[])];
}

type Resolved = ConsumerSettings & { name: string; service: ServiceOptions };

/** The one place where queue consumer options are checked. */
export function resolveEventQueueOptions(input: unknown): Resolved {
  requireObject('options', input);
  rejectUnknownKeys(input, KEYS, '');
  const raw = input;
  const d = eventQueueDefaults;
  const opt = <T>(key: string, fallback: T, read: (value: unknown) => T): T =>
    raw[key] === undefined ? fallback : read(raw[key]);
  const handlers = handlersOption(raw.handlers);
  if (raw.migrate !== undefined && typeof raw.migrate !== 'boolean')
    throw invalidOption('migrate', 'a boolean', raw.migrate);
  const lease = opt('lease', d.lease, (v) => durationOption('lease', v, 1_000));
  const checkInterval = opt('checkInterval', d.checkInterval, (v) => durationOption('checkInterval', v, 100));
  return {
    name: nameOption(raw),
    connectionString: connectionStringOption(raw),
    names: namesFor(
      opt('schema', d.schema, (v) => v as string),
      opt('table', d.table, (v) => v as string),
    ),
    handlers,
    coalesce: coalesceOption(raw.coalesce, handlers),
    concurrency: opt('concurrency', d.concurrency, (v) => integerOption('concurrency', v, 1, 10_000)),
    batchSize: opt('batchSize', d.batchSize, (v) => integerOption('batchSize', v, 1, 10_000)),
    lease,
    maxAttempts: opt('maxAttempts', d.maxAttempts, (v) => integerOption('maxAttempts', v, 1, 1_000)),
    handlerTimeout: opt('handlerTimeout', d.handlerTimeout, (v) => durationOption('handlerTimeout', v, 0)),
    retry: backoffOption('retry', raw.retry, d.retry),
    reconnect: backoffOption('reconnect', raw.reconnect, d.reconnect),
    pollInterval: opt('pollInterval', d.pollInterval, (v) => durationOption('pollInterval', v, 10)),
    depthInterval: opt('depthInterval', d.depthInterval, (v) => durationOption('depthInterval', v, 100)),
    poolSize: opt('poolSize', d.poolSize, (v) => integerOption('poolSize', v, 2, 100)),
    migrate: raw.migrate !== false,
    checkInterval,
    checkTimeout: opt('checkTimeout', d.checkTimeout, (v) => durationOption('checkTimeout', v, 100)),
    service: pickServiceOptions(raw),
  };
}

/**
 * A PostgreSQL event queue consumer as a service: any number of them, on any number of machines, may
 * consume the same table. See docs/postgres.md for the guarantees.
 */
export function pgEventQueue(input: PgEventQueueOptions): Service {
  const { name, service, ...settings } = resolveEventQueueOptions(input);
  return {
    ...service,
    name,
    run: (ctx) => new QueueConsumer(settings, ctx).run(),
  };
}
