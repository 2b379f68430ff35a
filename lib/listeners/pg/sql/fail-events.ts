import type { QueueNames } from '../identifiers.js';
import { claimsOf, type Queryable } from './types.js';

export interface FailArgs {
  owner: string;
  failures: Array<{ id: string; attempts: number; error: string; delayMs: number }>;
}

/**
 * Returns failed events to the queue, due again after their backoff delay, with the error kept; only
 * events still claimed by `owner` for that attempt. Returns how many were.
 */
export async function failEvents(db: Queryable, names: QueueNames, args: FailArgs): Promise<number> {
  const { rowCount } = await db.query(
    `UPDATE ${names.events} e
        SET locked_by = NULL, locked_until = NULL, last_error = f.error,
            run_at = now() + f.delay * interval '1 millisecond'
       FROM ${claimsOf('$2', '$5', '$3::text[]', '$4::float8[]')} AS f(id, attempts, owner, error, delay)
      WHERE e.id = ANY($2::bigint[]) AND e.id = f.id AND e.attempts = f.attempts AND e.locked_by = f.owner`,
    [
      args.owner,
      args.failures.map((f) => f.id),
      args.failures.map((f) => f.error),
      args.failures.map((f) => f.delayMs),
      args.failures.map((f) => f.attempts),
    ],
  );
  return rowCount ?? 0;
}
