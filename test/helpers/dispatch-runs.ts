import { adminQuery, testSchema } from './pg.js';
import { until } from './process.js';

/**
 * A fresh schema with the `runs` table the dispatch fixtures' handlers write to; its name is pushed to
 * `schemas` so the test file drops it at the end.
 */
export async function createRunsSchema(schemas: string[]): Promise<string> {
  const schema = testSchema();
  schemas.push(schema);
  await adminQuery(`CREATE SCHEMA ${schema}`);
  await adminQuery(
    `CREATE TABLE ${schema}.runs (key text NOT NULL, pid int NOT NULL, done boolean NOT NULL DEFAULT false)`,
  );
  return schema;
}

/** What the dispatch fixtures' handlers recorded for one key: every run's pid, and whether one finished. */
export interface KeyRuns {
  runs: number;
  pids: number[];
  done: boolean;
}

/** Reads the `runs` table the dispatch fixtures write to (one row per handler run), by key. */
export async function runsByKey(schema: string): Promise<Map<string, KeyRuns>> {
  const rows = await adminQuery<{ key: string; pid: number; done: boolean }>(
    `SELECT key, pid, done FROM ${schema}.runs`,
  );
  const byKey = new Map<string, KeyRuns>();
  for (const row of rows) {
    const entry = byKey.get(row.key) ?? { runs: 0, pids: [], done: false };
    entry.runs++;
    entry.pids.push(row.pid);
    entry.done ||= row.done;
    byKey.set(row.key, entry);
  }
  return byKey;
}

/** Waits until a run of every key has finished. */
export async function untilAllRan(schema: string, keys: string[], timeoutMs: number): Promise<void> {
  await until(
    async () => {
      const seen = await runsByKey(schema);
      return keys.every((key) => seen.get(key)?.done === true);
    },
    timeoutMs,
    `${keys.length} events handled`,
  );
}

/** Waits until a queue consumer has created its tables in `schema` (it migrates when it starts). */
export async function untilQueueTables(schema: string): Promise<void> {
  await until(
    async () =>
      (await adminQuery<{ t: string | null }>('SELECT to_regclass($1) AS t', [`${schema}.events`]))[0]!.t !==
      null,
    30_000,
    'queue tables created',
  );
}
