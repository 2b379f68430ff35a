import type { QueueNames } from '../identifiers.js';
import { prepared, type Queryable } from './types.js';

export interface CompleteArgs {
  owner: string;
  /** Plain events whose handler succeeded. */
  ids: string[];
  /** Coalesced events whose handler succeeded: every event of the key up to `upto` goes with them. */
  coalesced: Array<{ id: string; type: string; key: string; upto: string }>;
}

/**
 * Deletes a batch of handled events in one statement (one commit for the whole batch). Only events still
 * leased by `owner` are deleted: when a lease was lost the other consumer completes the event itself.
 * Returns how many older duplicates coalescing removed.
 */
export async function completeEvents(db: Queryable, names: QueueNames, args: CompleteArgs): Promise<number> {
  if (args.coalesced.length === 0) {
    // The common case: one plain DELETE by primary key.
    await db.query(
      prepared(
        `steward_complete_${names.migrationLock}`,
        `DELETE FROM ${names.events} WHERE id = ANY($2::bigint[]) AND locked_by = $1`,
      ),
      [args.owner, args.ids],
    );
    return 0;
  }
  const { rows } = await db.query<{ plain: number; merged: number }>(
    `WITH plain AS (
       DELETE FROM ${names.events} e WHERE e.id = ANY($2::bigint[]) AND e.locked_by = $1 RETURNING e.id
     ), merged AS (
       DELETE FROM ${names.events} e
        USING unnest($3::bigint[], $4::text[], $5::text[], $6::bigint[]) AS c(id, type, key, upto)
        WHERE e.type = c.type AND e.key = c.key AND e.id <= c.upto
          AND EXISTS (SELECT 1 FROM ${names.events} o WHERE o.id = c.id AND o.locked_by = $1)
       RETURNING e.id
     )
     SELECT (SELECT count(*) FROM plain)::int AS plain, (SELECT count(*) FROM merged)::int AS merged`,
    [
      args.owner,
      args.ids,
      args.coalesced.map((c) => c.id),
      args.coalesced.map((c) => c.type),
      args.coalesced.map((c) => c.key),
      args.coalesced.map((c) => c.upto),
    ],
  );
  return Math.max(0, (rows[0]?.merged ?? 0) - args.coalesced.length);
}
