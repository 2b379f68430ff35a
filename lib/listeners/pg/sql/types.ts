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

/**
 * The claims an outcome statement applies to, as rows `(id, attempts, owner, ...extra)`: `ids` a bigint[]
 * parameter, `attempts` an int[] one, `$1` the owner, `extra` further arrays of the same length. The
 * owner is a column of these rows rather than `locked_by = $1`: with the owner as a constant, the planner
 * reads the column statistics, and after an ANALYZE that saw few leased rows it expects one row to match,
 * scans the table and compares every match with every claim (a 1,000-event completion took 0.3 s
 * instead of 2 ms). Statements also filter `e.id = ANY(ids)`, so the table side is read by primary key.
 */
export function claimsOf(ids: string, attempts: string, ...extra: string[]): string {
  const owners = `array_fill($1::text, ARRAY[cardinality(${ids}::bigint[])])`;
  return `unnest(${[`${ids}::bigint[]`, `${attempts}::int[]`, owners, ...extra].join(', ')})`;
}

/**
 * A PostgreSQL array literal of bigint ids (as the database returned them) or integers: elements that
 * never need quoting. pg's own conversion quotes and concatenates element by element, which for the ids and
 * attempts of each 1,000-event completion was about a quarter of what a drain allocated.
 */
export function numberArray(values: ReadonlyArray<string | number>): string {
  return `{${values.join(',')}}`;
}

/**
 * `a` and `b` are events of one (type, key), compared in the collation of the index on (type, key, id)
 * (migration 4), so that the comparison can use it.
 */
export function sameKey(a: string, b: string): string {
  return `${a}.type COLLATE "C" = ${b}.type AND ${a}.key COLLATE "C" = ${b}.key`;
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
