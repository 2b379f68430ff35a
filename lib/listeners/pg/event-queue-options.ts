import { invalidOption, requireObject } from '../../common/option-checks.js';
import {
  boolean,
  duration,
  type Input,
  integer,
  option,
  type Resolved,
  required,
} from '../../common/option-spec.js';
import { backoff } from '../../common/option-spec-backoff.js';
import { listenerValve } from '../../common/valve-options.js';
import type { ServiceOptions } from '../../services/types.js';
import { listenSpec, pgServiceSpec, resolvePgService } from './common-options.js';
import { namesFor, queueLocationSpec } from './enqueue.js';
import type { QueueNames } from './identifiers.js';
import type { EventHandler } from './queue-event.js';

const eventTypes = (value: unknown): value is string[] =>
  Array.isArray(value) && value.every((type) => typeof type === 'string');

/** Options of `pgEventQueue()`; the service host's options (`restart`, `stallTimeout`, ...) pass through. */
export const eventQueueSpec = {
  ...pgServiceSpec,
  /** `'workers'`: claims and handlers at once follow the HTTP workers' load (docs/valve.md). @default 'none' */
  valve: listenerValve,
  /** Handler per event type; the consumer claims only these types. */
  handlers: required(
    option<Record<string, EventHandler>, Record<string, EventHandler>>({
      kind: 'custom',
      expected: 'an object with at least one event type',
      parse(name, value) {
        requireObject(name, value);
        const types = Object.keys(value);
        if (types.length === 0) throw invalidOption(name, 'an object with at least one event type', value);
        for (const type of types) {
          if (typeof value[type] !== 'function')
            throw invalidOption(`${name}.${type}`, 'a function', value[type]);
        }
        return { ...(value as Record<string, EventHandler>) };
      },
    }),
  ),
  ...queueLocationSpec,
  /**
   * Types whose handler receives only the newest payload of a key; the older pending events of the key
   * are removed when it succeeds (for "something changed, re-read it" events). @default []
   */
  coalesce: option<string[], string[]>({
    kind: 'custom',
    expected: 'an array of event types',
    default: [],
    parse(name, value) {
      if (!eventTypes(value)) throw invalidOption(name, 'an array of event types', value);
      return [...new Set(value)];
    },
  }),
  /** Handlers running at once (events of one type and key never run together). @default 10 */
  concurrency: integer({ min: 1, max: 10_000, default: 10 }),
  /** Events claimed per statement; larger batches mean fewer commits. @default 100 */
  batchSize: integer({ min: 1, max: 10_000, default: 100 }),
  /** Lease of a claimed event (ms or `'30s'`), renewed while it is held; a crashed consumer's events run again after it. @default 30000 */
  lease: duration({ min: 1_000, default: 30_000 }),
  /** Runs of an event (the first included) before it moves to the dead-letter table. @default 10 */
  maxAttempts: integer({ min: 1, max: 1_000, default: 10 }),
  /**
   * A handler still pending after this long (ms or `'30s'`) fails its event with STEWARD_ERR_HANDLER_TIMEOUT
   * (retried with backoff, or dead-lettered at `maxAttempts`), which frees its concurrency slot and its key;
   * its signal aborts and its promise is abandoned. 0 means no limit. A handler that has not settled in
   * 30 s is almost surely hung; without a limit, `concurrency` hung handlers stop the whole queue for good.
   * @default 30000
   */
  handlerTimeout: duration({ min: 0, default: 30_000 }),
  /** Delay before a failed event runs again, doubling per attempt. @default { initialDelay: 1000, maxDelay: 300000, jitter: 0.2 } */
  retry: backoff({ initialDelay: 1_000, maxDelay: 300_000, jitter: 0.2 }),
  /** Claim at least this often without a NOTIFY wake-up (delayed events, lost notifications). @default 2000 */
  pollInterval: duration({ min: 10, default: 2_000 }),
  /** How often queue depth and the oldest event's age are measured. @default 5000 */
  depthInterval: duration({ min: 100, default: 5_000 }),
  /** Pooled connections for outcomes, lease renewal and depth (claims and LISTEN have one each). @default 4 */
  poolSize: integer({ min: 2, max: 100, default: 4 }),
  /** Apply the schema migrations at start (under an advisory lock). @default true */
  migrate: boolean(true),
  /**
   * Backoff while the database is unreachable at start, after a failed claim and of the LISTEN
   * reconnection; also the LISTEN connection's liveness checks.
   */
  ...listenSpec,
};

export type PgEventQueueOptions = Input<typeof eventQueueSpec> & ServiceOptions;

/** What a queue consumer runs with: the queue's checked names instead of its schema and table. */
export type ConsumerSettings = Omit<Resolved<typeof eventQueueSpec>, 'name' | 'schema' | 'table'> & {
  names: QueueNames;
};

/** The one place where queue consumer options are checked. */
export function resolveEventQueueOptions(input: unknown) {
  const { name, schema, table, service, ...settings } = resolvePgService(eventQueueSpec, input);
  for (const type of settings.coalesce) {
    if (!(type in settings.handlers))
      throw invalidOption(
        'coalesce',
        `event types that have a handler (${type} has none)`,
        settings.coalesce,
      );
  }
  const consumer: ConsumerSettings = { ...settings, names: namesFor(schema, table) };
  return { ...consumer, name, service };
}
