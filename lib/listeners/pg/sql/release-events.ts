import type { QueueNames } from '../identifiers.js';
import type { Queryable } from './types.js';

export interface ReleaseArgs {
  owner: string;
  /** Claimed events whose handler never started: the attempt did not happen. */
  ids: string[];
}

/** Hands claimed but unstarted events back at once (graceful stop), without counting an attempt. */
export async function releaseEvents(db: Queryable, names: QueueNames, args: ReleaseArgs): Promise<number> {
  const { rowCount } = await db.query(
    `UPDATE ${names.events}
        SET locked_by = NULL, locked_until = NULL, attempts = greatest(attempts - 1, 0)
      WHERE id = ANY($2::bigint[]) AND locked_by = $1`,
    [args.owner, args.ids],
  );
  return rowCount ?? 0;
}
