import type { QueueNames } from '../identifiers.js';
import type { Queryable } from './types.js';

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
       FROM unnest($2::bigint[], $3::text[], $4::float8[], $5::int[]) AS f(id, error, delay, attempts)
      WHERE e.id = f.id AND e.locked_by = $1 AND e.attempts = f.attempts`,
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
