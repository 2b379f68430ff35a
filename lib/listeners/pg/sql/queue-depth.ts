import type { QueueNames } from '../identifiers.js';
import type { Queryable } from './types.js';

export interface DepthArgs {
  types: string[];
}

export interface QueueDepth {
  depth: number;
  /** Age of the oldest event in ms (database clock), or undefined when the queue is empty. */
  oldestAgeMs: number | undefined;
}

/** Events of the consumer's types still in the table (due, leased or waiting for a retry). */
export async function queueDepth(db: Queryable, names: QueueNames, args: DepthArgs): Promise<QueueDepth> {
  const { rows } = await db.query<{ depth: number; oldest_ms: number | null }>(
    `SELECT count(*)::int AS depth, extract(epoch FROM now() - min(created_at))::float8 * 1000 AS oldest_ms
       FROM ${names.events} WHERE type = ANY($1::text[])`,
    [args.types],
  );
  const row = rows[0];
  return {
    depth: row?.depth ?? 0,
    oldestAgeMs: row?.oldest_ms == null ? undefined : Math.round(row.oldest_ms),
  };
}
