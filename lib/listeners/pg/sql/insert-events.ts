import type { QueueNames } from '../identifiers.js';
import type { Queryable } from './types.js';

export interface InsertArgs {
  events: Array<{ type: string; key: string | null; payload: string; runAt: Date | null }>;
}

/**
 * Inserts a batch of events in one statement and notifies the table's channel in the same statement, so
 * the wake-up is delivered when (and only if) the caller's transaction commits.
 */
export async function insertEvents(db: Queryable, names: QueueNames, args: InsertArgs): Promise<string[]> {
  const { rows } = await db.query<{ ids: string[] | null }>(
    `WITH inserted AS (
       INSERT INTO ${names.events} (type, key, payload, run_at)
       SELECT t, k, p::jsonb, coalesce(r, now())
         FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[]) WITH ORDINALITY AS u(t, k, p, r, n)
        ORDER BY n
       RETURNING id
     )
     SELECT (SELECT array_agg(id ORDER BY id) FROM inserted)::text[] AS ids, pg_notify($5, '')`,
    [
      args.events.map((e) => e.type),
      args.events.map((e) => e.key),
      args.events.map((e) => e.payload),
      args.events.map((e) => e.runAt),
      names.channel,
    ],
  );
  return rows[0]?.ids ?? [];
}
