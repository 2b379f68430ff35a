import assert from 'node:assert/strict';
import { test } from 'node:test';
import pg from 'pg';
import { claimEvents } from '../lib/listeners/pg/sql/claim-events.js';
import { completeEvents } from '../lib/listeners/pg/sql/complete-events.js';
import { deadLetterEvents } from '../lib/listeners/pg/sql/dead-letter-events.js';
import { failEvents } from '../lib/listeners/pg/sql/fail-events.js';
import type { Queryable } from '../lib/listeners/pg/sql/types.js';
import { enqueue, migrate, queueNames } from '../lib/pg.js';
import { dropSchema, pgUrl, randomSuffix, testSchema } from './helpers/pg.js';

/**
 * Runs each statement as `EXPLAIN (FORMAT JSON)` with its parameters, as an unnamed statement: PostgreSQL
 * then plans it for these very values (a custom plan), which is how the outcome statements misbehaved.
 */
function explaining(pool: pg.Pool, plans: unknown[]): Queryable {
  return {
    async query(statement: string | pg.QueryConfig, values?: unknown[]) {
      const text = typeof statement === 'string' ? statement : statement.text;
      const result = await pool.query(`EXPLAIN (FORMAT JSON) ${text}`, values);
      plans.push(result.rows[0]['QUERY PLAN']);
      return { ...result, rows: [], rowCount: 0 };
    },
  } as Queryable;
}

/** Every plan node, depth first. */
function nodes(plan: unknown): Array<Record<string, unknown>> {
  const out: Array<Record<string, unknown>> = [];
  const walk = (node: Record<string, unknown>) => {
    out.push(node);
    for (const child of (node.Plans as Array<Record<string, unknown>>) ?? []) walk(child);
  };
  walk((plan as Array<{ Plan: Record<string, unknown> }>)[0]!.Plan);
  return out;
}

test('outcome statements for 1,000 claims read the table by primary key, even when statistics saw no leases', async (t) => {
  const schema = testSchema();
  const pool = new pg.Pool({ connectionString: pgUrl(`steward-test-plans-${randomSuffix()}`), max: 2 });
  t.after(async () => {
    await pool.end();
    await dropSchema(schema);
  });
  const names = queueNames(schema, 'events');
  await migrate(pool, names);
  const events = Array.from({ length: 20_000 }, (_, i) => ({
    type: 'work',
    key: `k${i % 1_000}`,
    payload: i,
  }));
  await enqueue(pool, events, { schema });
  // Statistics taken while nothing is leased: `locked_by = <owner>` then looks like it matches no row.
  await pool.query(`VACUUM ANALYZE ${names.events}`);
  const owner = 'plans-test';
  const claimed = await claimEvents(pool, names, {
    owner,
    limit: 1_000,
    leaseMs: 30_000,
    types: ['work'],
    coalesce: [],
  });
  assert.equal(claimed.length, 1_000);
  const plans: unknown[] = [];
  const db = explaining(pool, plans);
  await completeEvents(db, names, {
    owner,
    plain: claimed.map(({ id, attempts }) => ({ id, attempts })),
    coalesced: [],
  });
  await completeEvents(db, names, {
    owner,
    plain: claimed.slice(0, 500).map(({ id, attempts }) => ({ id, attempts })),
    coalesced: claimed
      .slice(500)
      .map(({ id, attempts, type, key }) => ({ id, attempts, type, key: key!, upto: id })),
  });
  await failEvents(db, names, {
    owner,
    failures: claimed.map(({ id, attempts }) => ({ id, attempts, error: 'e', delayMs: 1_000 })),
  });
  await deadLetterEvents(db, names, {
    owner,
    failures: claimed.map(({ id, attempts }) => ({ id, attempts, error: 'e' })),
  });
  assert.equal(plans.length, 4);
  for (const [i, plan] of plans.entries()) {
    const all = nodes(plan);
    const scans = all.filter((node) => node['Relation Name'] === 'events');
    assert.ok(scans.length > 0, `statement ${i} reads the events table`);
    for (const scan of scans)
      assert.notEqual(
        scan['Node Type'],
        'Seq Scan',
        `statement ${i} scans the whole table: ${JSON.stringify(plan)}`,
      );
    // The failure mode: a nested loop that compares every matching row with every claim.
    for (const node of all.filter((n) => n['Node Type'] === 'Nested Loop')) {
      const inner = (node.Plans as Array<Record<string, unknown>>)[1]!;
      assert.notEqual(inner['Node Type'], 'Function Scan', `statement ${i} rescans the claims per row`);
    }
  }
});
