import type pg from 'pg';

/** Anything that runs a query: a Pool, a Client, or a pooled client inside the caller's transaction. */
export interface Queryable {
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(
    text: string,
    values?: unknown[],
  ): Promise<pg.QueryResult<R>>;
}

/** One event as the claim query returns it. `id` and `upto` are bigints, kept as strings. */
export interface ClaimedRow {
  id: string;
  type: string;
  key: string | null;
  payload: unknown;
  created_at: Date;
  attempts: number;
  /** Milliseconds from enqueue to claim, measured on the database clock. */
  lag_ms: number;
  /** For a coalesced event: the newest id of its (type, key) when claimed, removed with it on success. */
  upto: string | null;
}
