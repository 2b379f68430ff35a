import type { QueueNames } from '../identifiers.js';
import { numberArray, type Queryable } from './types.js';

export interface RenewArgs {
  owner: string;
  ids: string[];
  leaseMs: number;
}

/** Extends the lease of events still being handled; returns the ids still ours (others were lost). */
export async function renewLeases(db: Queryable, names: QueueNames, args: RenewArgs): Promise<string[]> {
  const { rows } = await db.query<{ id: string }>(
    `UPDATE ${names.events} SET locked_until = now() + $3 * interval '1 millisecond'
      WHERE id = ANY($2::bigint[]) AND locked_by = $1
      RETURNING id`,
    [args.owner, numberArray(args.ids), args.leaseMs],
  );
  return rows.map((row) => row.id);
}
