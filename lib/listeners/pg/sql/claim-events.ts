import type { QueueNames } from '../identifiers.js';
import type { ClaimedRow, Queryable } from './types.js';

export interface ClaimArgs {
  owner: string;
  limit: number;
  leaseMs: number;
  /** Types this consumer has handlers for; other types stay for other consumers. */
  types: string[];
  /** Types whose handler receives the newest payload of the key. */
  coalesce: string[];
}

/**
 * Claims up to `limit` due events in one statement. `SKIP LOCKED` lets any number of consumers claim
 * side by side; an event with a key is claimed only while no older event of its (type, key) exists and
 * no other one is leased, so a key never runs concurrently and runs in id order across all consumers.
 */
export async function claimEvents(db: Queryable, names: QueueNames, args: ClaimArgs): Promise<ClaimedRow[]> {
  const { rows } = await db.query<ClaimedRow>(
    `WITH candidates AS (
       SELECT e.id FROM ${names.events} e
        WHERE e.type = ANY($4::text[])
          AND e.run_at <= now()
          AND (e.locked_until IS NULL OR e.locked_until < now())
          AND (e.key IS NULL OR NOT EXISTS (
                SELECT 1 FROM ${names.events} o
                 WHERE o.type = e.type AND o.key = e.key AND o.id <> e.id
                   AND (o.id < e.id OR o.locked_until >= now())))
        ORDER BY e.id
        LIMIT $2
        FOR UPDATE SKIP LOCKED
     ), claimed AS (
       UPDATE ${names.events} e
          SET locked_by = $1, locked_until = now() + $3 * interval '1 millisecond', attempts = e.attempts + 1
         FROM candidates c
        WHERE e.id = c.id
       RETURNING e.id, e.type, e.key, e.payload, e.created_at, e.attempts
     )
     SELECT c.id, c.type, c.key, c.created_at, c.attempts,
            extract(epoch FROM now() - c.created_at)::float8 * 1000 AS lag_ms,
            CASE WHEN n.id IS NULL THEN c.payload ELSE n.payload END AS payload,
            n.id AS upto
       FROM claimed c
       LEFT JOIN LATERAL (
         SELECT x.id, x.payload FROM ${names.events} x
          WHERE c.key IS NOT NULL AND c.type = ANY($5::text[]) AND x.type = c.type AND x.key = c.key
          ORDER BY x.id DESC
          LIMIT 1
       ) n ON true
      ORDER BY c.id`,
    [args.owner, args.limit, args.leaseMs, args.types, args.coalesce],
  );
  return rows;
}
