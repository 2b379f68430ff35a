import type pg from 'pg';
import { quoteIdentifier } from '../../common/sql-identifier.js';
import { StewardError } from '../../errors.js';
import type { EpochTable, FencingToken } from '../../services/lease.js';
import type { Queryable } from './sql/types.js';

function quotedTable(location: EpochTable): string {
  return `${quoteIdentifier('singleton.epochSchema', location.schema)}.${quoteIdentifier('singleton.epochTable', location.table)}`;
}

/** duplicate_table and unique_violation: another holder created the table at the same moment. */
const CREATE_RACE_CODES = new Set(['42P07', '23505']);

/** The epoch table's definition, also shown to whoever has to create it by hand. */
function epochTableDdl(table: string): string {
  return `CREATE TABLE IF NOT EXISTS ${table} (key text PRIMARY KEY, epoch bigint NOT NULL, acquired_at timestamptz NOT NULL DEFAULT now(), holder text NOT NULL)`;
}

async function createEpochTable(client: pg.Client, table: string): Promise<void> {
  try {
    await client.query(epochTableDdl(table));
  } catch (error) {
    const code = (error as { code?: string }).code ?? '';
    if (CREATE_RACE_CODES.has(code)) return;
    // insufficient_privilege: since PostgreSQL 15 ordinary roles may not create tables in `public`.
    if (code === '42501')
      throw new StewardError(
        'STEWARD_ERR_PG_CONNECTION',
        `The singleton epoch table ${table} does not exist and this role may not create it: create it once with \`${epochTableDdl(table)}\` (and GRANT SELECT, INSERT, UPDATE on it), choose another \`singleton.epochTable\`, or set \`singleton.epochTable: false\``,
        { cause: error, details: { table } },
      );
    throw error;
  }
}

/**
 * Increments the epoch of `key` on the lock session, right after the advisory lock was taken, and
 * returns the new token. A writer still inside a transaction that checked the previous epoch holds a
 * share lock on the row, so the increment waits for that transaction to end: a stale write either
 * committed before the new holder started, or is refused.
 */
export async function nextEpoch(
  client: pg.Client,
  location: EpochTable,
  key: string,
  holder: string,
): Promise<FencingToken> {
  const table = quotedTable(location);
  const bump = `INSERT INTO ${table} AS t (key, epoch, holder) VALUES ($1, 1, $2)
                ON CONFLICT (key) DO UPDATE SET epoch = t.epoch + 1, holder = EXCLUDED.holder, acquired_at = now()
                RETURNING epoch::text AS epoch`;
  let result: pg.QueryResult<{ epoch: string }>;
  try {
    result = await client.query<{ epoch: string }>(bump, [key, holder]);
  } catch (error) {
    // undefined_table: the first acquisition anywhere creates it.
    if ((error as { code?: string }).code !== '42P01') throw error;
    await createEpochTable(client, table);
    result = await client.query<{ epoch: string }>(bump, [key, holder]);
  }
  return { key, epoch: result.rows[0]!.epoch, schema: location.schema, table: location.table };
}

/**
 * Checks, inside the caller's transaction on `db`, that `token` is still the newest epoch of its key,
 * and keeps a share lock on the epoch row until that transaction ends (so no new holder can start
 * meanwhile). Throws `STEWARD_ERR_SINGLETON_FENCED` when a newer holder exists: the caller's transaction
 * must then roll back. Outside a transaction the lock ends with the statement and the check only says
 * that the token was current a moment ago.
 */
export async function assertFencingToken(db: Queryable, token: FencingToken): Promise<void> {
  if (typeof token !== 'object' || token === null || typeof token.key !== 'string')
    throw new StewardError('STEWARD_ERR_INVALID_OPTION', 'Expected a fencing token from `ctx.fencing`', {
      details: { option: 'token' },
    });
  const table = quotedTable(token);
  const { rows } = await db.query<{ epoch: string }>(
    `SELECT epoch::text AS epoch FROM ${table} WHERE key = $1 FOR SHARE`,
    [token.key],
  );
  const current = rows[0]?.epoch ?? null;
  if (current !== token.epoch) {
    throw new StewardError(
      'STEWARD_ERR_SINGLETON_FENCED',
      `Singleton \`${token.key}\` epoch ${token.epoch} is stale (current: ${current ?? 'none'}); a newer holder exists`,
      { details: { key: token.key, epoch: token.epoch, current } },
    );
  }
}
