import type { QueueNames } from '../identifiers.js';
import type { Queryable } from './types.js';

export interface DepthArgs {
  types: string[];
}

export interface QueueDepth {
  depth: number;
  /** Age of the oldest event in ms (database clock), or undefined when the queue is empty. */
  oldestAgeMs: number | undefined;
  /** Events of types this consumer has no handler for (left for consumers that have one). */
  unhandled: number;
}

/** Events of the consumer's types still in the table (due, leased or waiting for a retry), in one scan. */
export async function queueDepth(db: Queryable, names: QueueNames, args: DepthArgs): Promise<QueueDepth> {
  const { rows } = await db.query<{ depth: number; oldest_ms: number | null; unhandled: number }>(
    `SELECT count(*) FILTER (WHERE type = ANY($1::text[]))::int AS depth,
            extract(epoch FROM now() - min(created_at) FILTER (WHERE type = ANY($1::text[])))::float8 * 1000 AS oldest_ms,
            count(*) FILTER (WHERE type <> ALL($1::text[]))::int AS unhandled
       FROM ${names.events}`,
    [args.types],
  );
  const row = rows[0];
  return {
    depth: row?.depth ?? 0,
    oldestAgeMs: row?.oldest_ms == null ? undefined : Math.round(row.oldest_ms),
    unhandled: row?.unhandled ?? 0,
  };
}

/** The most frequent event types with no handler in this consumer, with their counts. */
export async function unhandledTypes(
  db: Queryable,
  names: QueueNames,
  args: DepthArgs,
): Promise<Record<string, number>> {
  const { rows } = await db.query<{ type: string; count: number }>(
    `SELECT type, count(*)::int AS count FROM ${names.events}
      WHERE type <> ALL($1::text[]) GROUP BY type ORDER BY count DESC LIMIT 10`,
    [args.types],
  );
  return Object.fromEntries(rows.map((row) => [row.type, row.count]));
}
