import type { Logger } from 'pino';
import type { QueueNames } from './identifiers.js';
import { migrations } from './migrations/index.js';
import type { Queryable } from './sql/types.js';

interface Connectable {
  connect(): Promise<Queryable & { release(error?: Error | boolean): void }>;
}

/**
 * Brings the queue schema up to date, in one transaction under an advisory lock so consumers starting
 * together on many machines apply each migration exactly once. Idempotent; returns the ids applied.
 */
export async function migrate(pool: Connectable, names: QueueNames, logger?: Logger): Promise<number[]> {
  const client = await pool.connect();
  const applied: number[] = [];
  try {
    await client.query('BEGIN');
    await client.query('SELECT pg_advisory_xact_lock($1::bigint)', [names.migrationLock]);
    await client.query(`CREATE SCHEMA IF NOT EXISTS "${names.schema}"`);
    await client.query(
      `CREATE TABLE IF NOT EXISTS ${names.migrations} (id integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`,
    );
    const { rows } = await client.query<{ id: number }>(`SELECT id FROM ${names.migrations}`);
    const done = new Set(rows.map((row) => row.id));
    for (const migration of migrations) {
      if (done.has(migration.id)) continue;
      await client.query(migration.sql(names));
      await client.query(`INSERT INTO ${names.migrations} (id) VALUES ($1)`, [migration.id]);
      applied.push(migration.id);
    }
    await client.query('COMMIT');
    client.release();
  } catch (error) {
    await client.query('ROLLBACK').catch(() => {});
    client.release(true);
    throw error;
  }
  if (applied.length > 0)
    logger?.info({ schema: names.schema, table: names.table, applied }, 'queue:migrate');
  return applied;
}
