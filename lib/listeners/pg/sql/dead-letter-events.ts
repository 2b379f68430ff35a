import type { QueueNames } from '../identifiers.js';
import { claimsOf, type Queryable } from './types.js';

export interface DeadLetterArgs {
  owner: string;
  failures: Array<{ id: string; attempts: number; error: string }>;
}

/**
 * Moves events that exhausted their attempts to the dead-letter table with their last error, atomically;
 * only events still claimed by `owner` for that attempt. Returns how many moved.
 */
export async function deadLetterEvents(
  db: Queryable,
  names: QueueNames,
  args: DeadLetterArgs,
): Promise<number> {
  const { rowCount } = await db.query(
    `WITH moved AS (
       DELETE FROM ${names.events} e
        USING ${claimsOf('$2', '$4', '$3::text[]')} AS f(id, attempts, owner, error)
        WHERE e.id = ANY($2::bigint[]) AND e.id = f.id AND e.attempts = f.attempts AND e.locked_by = f.owner
       RETURNING e.id, e.type, e.key, e.payload, e.created_at, e.attempts, f.error
     )
     INSERT INTO ${names.dead} (id, type, key, payload, created_at, attempts, last_error)
     SELECT id, type, key, payload, created_at, attempts, error FROM moved
     ON CONFLICT (id) DO NOTHING`,
    [
      args.owner,
      args.failures.map((f) => f.id),
      args.failures.map((f) => f.error),
      args.failures.map((f) => f.attempts),
    ],
  );
  return rowCount ?? 0;
}
