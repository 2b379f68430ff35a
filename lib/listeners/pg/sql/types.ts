import type pg from 'pg';

/** Anything that runs a query: a Pool, a Client, or a pooled client inside the caller's transaction. */
export interface Queryable {
  /** Runs one statement with bound parameters. */
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(
    text: string | pg.QueryConfig,
    values?: unknown[],
  ): Promise<pg.QueryResult<R>>;
}

/**
 * A named (prepared) statement: parsed and planned once per connection. Used for the consumer's hot
 * statements on its own pool; `enqueue` runs unnamed statements because it borrows the caller's
 * connection (which may sit behind a transaction-mode pooler).
 */
export function prepared(name: string, text: string): pg.QueryConfig {
  return { name, text };
}

/** One event as the claim query returns it. `id` and `upto` are bigints, kept as strings. */
export interface ClaimedRow {
  id: string;
  type: string;
  key: string | null;
  payload: unknown;
  /** Enqueue time, epoch ms. */
  created_ms: number;
  attempts: number;
  /** Milliseconds from enqueue to claim, measured on the database clock. */
  lag_ms: number;
  /** For a coalesced event: the newest id of its (type, key) when claimed, removed with it on success. */
  upto: string | null;
}
