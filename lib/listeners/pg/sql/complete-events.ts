import type { QueueNames } from '../identifiers.js';
import { claimsOf, numberArray, prepared, type Queryable, sameKey } from './types.js';

export interface CompleteArgs {
  owner: string;
  /** Plain events whose handler succeeded, with the attempt each was claimed for. */
  plain: Array<{ id: string; attempts: number }>;
  /** Coalesced events whose handler succeeded: every event of the key up to `upto` goes with them. */
  coalesced: Array<{ id: string; attempts: number; type: string; key: string; upto: string }>;
}

export interface CompleteResult {
  /** Older events of a coalesced key removed with the newest one. */
  merged: number;
  /**
   * Completions refused because the claim was no longer ours: the lease expired and the event was
   * claimed again (by another consumer, or by this one for a later attempt) or already completed.
   */
  leaseLost: number;
}

/**
 * Deletes a batch of handled events in one statement (one commit for the whole batch). An event is
 * deleted only while it still carries this claim, owner and attempt: a consumer that resumes after its
 * lease expired completes none of the events handed to someone else meanwhile.
 */
export async function completeEvents(
  db: Queryable,
  names: QueueNames,
  args: CompleteArgs,
): Promise<CompleteResult> {
  if (args.coalesced.length === 0) {
    // The common case: one plain DELETE by primary key.
    const { rowCount } = await db.query(
      prepared(
        `steward_complete_${names.migrationLock}`,
        `DELETE FROM ${names.events} e
          USING ${claimsOf('$2', '$3')} AS c(id, attempts, owner)
          WHERE e.id = ANY($2::bigint[]) AND e.id = c.id AND e.attempts = c.attempts AND e.locked_by = c.owner`,
      ),
      [args.owner, numberArray(args.plain.map((c) => c.id)), numberArray(args.plain.map((c) => c.attempts))],
    );
    return { merged: 0, leaseLost: args.plain.length - (rowCount ?? 0) };
  }
  const { rows } = await db.query<{ plain: number; owned: number; merged: number }>(
    `WITH plain AS (
       DELETE FROM ${names.events} e
        USING ${claimsOf('$2', '$3')} AS c(id, attempts, owner)
        WHERE e.id = ANY($2::bigint[]) AND e.id = c.id AND e.attempts = c.attempts AND e.locked_by = c.owner
       RETURNING e.id
     ), owned AS (
       SELECT c.* FROM ${claimsOf('$4', '$5', '$6::text[]', '$7::text[]', '$8::bigint[]')}
                         AS c(id, attempts, owner, type, key, upto)
        WHERE EXISTS (SELECT 1 FROM ${names.events} o
                       WHERE o.id = ANY($4::bigint[]) AND o.id = c.id AND o.attempts = c.attempts
                         AND o.locked_by = c.owner)
     ), merged AS (
       DELETE FROM ${names.events} e USING owned c
        WHERE ${sameKey('e', 'c')} AND e.id <= c.upto
       RETURNING e.id
     )
     SELECT (SELECT count(*) FROM plain)::int AS plain, (SELECT count(*) FROM owned)::int AS owned,
            (SELECT count(*) FROM merged)::int AS merged`,
    [
      args.owner,
      args.plain.map((c) => c.id),
      args.plain.map((c) => c.attempts),
      args.coalesced.map((c) => c.id),
      args.coalesced.map((c) => c.attempts),
      args.coalesced.map((c) => c.type),
      args.coalesced.map((c) => c.key),
      args.coalesced.map((c) => c.upto),
    ],
  );
  const row = rows[0] ?? { plain: 0, owned: 0, merged: 0 };
  return {
    merged: Math.max(0, row.merged - row.owned),
    leaseLost: args.plain.length - row.plain + (args.coalesced.length - row.owned),
  };
}
