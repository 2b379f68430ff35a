import { randomBytes } from 'node:crypto';
import pg from 'pg';
import pino, { type Logger } from 'pino';
import { ServiceRecord } from '../../lib/services/service-record.js';
import type { Service } from '../../lib/services/types.js';

/** The shared test server; every test uses its own schema and application_name. */
export const PG_BASE = process.env.STEWARD_TEST_PG ?? 'postgres://postgres@127.0.0.1:5432/test';

export function randomSuffix(): string {
  return randomBytes(4).toString('hex');
}

/** A connection string tagged with `applicationName`, so a test can terminate only its own backends. */
export function pgUrl(applicationName: string): string {
  const url = new URL(PG_BASE);
  url.searchParams.set('application_name', applicationName);
  return url.href;
}

/** Runs one statement on a short-lived admin connection. */
export async function adminQuery<R extends pg.QueryResultRow = pg.QueryResultRow>(
  text: string,
  values: unknown[] = [],
): Promise<R[]> {
  const client = new pg.Client({ connectionString: pgUrl('steward-test-admin') });
  await client.connect();
  try {
    return (await client.query<R>(text, values)).rows;
  } finally {
    await client.end();
  }
}

/** Terminates the backends of exactly this application_name (never another test's). */
export async function terminateBackends(applicationName: string): Promise<number> {
  const rows = await adminQuery<{ pid: number }>(
    // pg_terminate_backend in the select list runs only for the rows the WHERE clause kept.
    `SELECT pid, pg_terminate_backend(pid) FROM pg_stat_activity
      WHERE application_name = $1 AND pid <> pg_backend_pid()`,
    [applicationName],
  );
  return rows.length;
}

export async function countBackends(applicationName: string): Promise<number> {
  const rows = await adminQuery<{ n: string }>(
    'SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = $1',
    [applicationName],
  );
  return Number(rows[0]!.n);
}

export async function dropSchema(schema: string): Promise<void> {
  if (!/^[a-z_][a-z0-9_]*$/.test(schema)) throw new Error(`refusing to drop ${schema}`);
  await adminQuery(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
}

/** Runs a service in this process with the real service context; `stop()` aborts and awaits `run`. */
export function runService(service: Service, logger: Logger = pino({ level: 'silent' })) {
  const controller = new AbortController();
  const record = new ServiceRecord(service.name, false);
  const done = service.run(record.createContext(controller.signal, logger));
  return {
    record,
    done,
    async stop(): Promise<void> {
      controller.abort();
      try {
        await done;
      } finally {
        record.dispose();
      }
    },
  };
}

/** A fresh schema name for one test; drop it with `dropSchema` when the test ends. */
export function testSchema(): string {
  return `steward_test_${randomSuffix()}`;
}
