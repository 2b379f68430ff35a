import assert from 'node:assert/strict';
import { test } from 'node:test';
import pg from 'pg';
import { type ClaimArgs, claimEvents } from '../lib/listeners/pg/sql/claim-events.js';
import { completeEvents } from '../lib/listeners/pg/sql/complete-events.js';
import { enqueue, migrate, type QueueNames, queueNames } from '../lib/pg.js';
import { dropSchema, pgUrl, randomSuffix, testSchema } from './helpers/pg.js';

/**
 * The key rules of a claim, asked of the statement itself: the windowed claim (grouping what it read by key)
 * and the whole-queue claim (a walk of each candidate's key) must take the same events.
 */
async function setup(t: { after(fn: () => unknown): void }) {
  const schema = testSchema();
  const pool = new pg.Pool({ connectionString: pgUrl(`steward-test-claim-keys-${randomSuffix()}`), max: 4 });
  t.after(async () => {
    await pool.end();
    await dropSchema(schema);
  });
  const names = queueNames(schema, 'events');
  await migrate(pool, names);
  return { schema, pool, names };
}

const claimArgs = (owner: string, more: Partial<ClaimArgs> = {}): ClaimArgs => ({
  owner,
  limit: 100,
  leaseMs: 30_000,
  types: ['work', 'latest'],
  coalesce: [],
  ...more,
});

/** Claims in a transaction that is rolled back: what would be taken, leaving the table as it was. */
async function wouldClaim(pool: pg.Pool, names: QueueNames, args: ClaimArgs): Promise<string[]> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    const rows = await claimEvents(client, names, args);
    return rows.map((row) => `${row.key ?? '-'}:${(row.payload as { step: number }).step}`);
  } finally {
    await client.query('ROLLBACK');
    client.release();
  }
}

/** Asks both the windowed and the whole-queue claim, and checks that they agree. */
async function bothClaims(
  pool: pg.Pool,
  names: QueueNames,
  args: ClaimArgs,
  window: number,
): Promise<string[]> {
  const windowed = await wouldClaim(pool, names, { ...args, window });
  const whole = await wouldClaim(pool, names, args);
  assert.deepEqual(windowed, whole, `windowed (${window}) and whole-queue claims agree`);
  return windowed;
}

/** Leases events to `owner` as its own claim would have, `leaseMs` from now. */
async function lease(pool: pg.Pool, names: QueueNames, where: string, owner: string, leaseMs = 30_000) {
  await pool.query(
    `UPDATE ${names.events} SET locked_by = $1, locked_until = now() + $2 * interval '1 millisecond',
            attempts = attempts + 1 WHERE ${where}`,
    [owner, leaseMs],
  );
}

const step = (key: string, n: number, type = 'work') => ({ type, key, payload: { step: n } });

test('a head that committed after newer events of its key were claimed elsewhere waits, inside and beyond the window', async (t) => {
  const { pool, names } = await setup(t);
  // k: steps 0 and 1; x: steps 0 and 1, enqueued between them so that a window of 1 ends at x's step 0.
  await enqueue(pool, [step('k', 0), step('x', 0), step('x', 1), step('k', 1)], {
    schema: names.schema,
  });
  // Another consumer holds k's step 1 (it took it while step 0 was not yet committed).
  await lease(pool, names, `key = 'k' AND payload->>'step' = '1'`, 'other');
  // Window 1: k's step 1 lies beyond the window's end (looked up after it); window 10: within it.
  assert.deepEqual(await bothClaims(pool, names, claimArgs('me'), 1), ['x:0']);
  assert.deepEqual(await bothClaims(pool, names, claimArgs('me'), 10), ['x:0']);
  // Once that lease has run out, k's step 0 is the key's head again.
  await lease(pool, names, `key = 'k' AND payload->>'step' = '1'`, 'other', -1_000);
  assert.deepEqual(await bothClaims(pool, names, claimArgs('me'), 1), ['k:0', 'x:0']);
  assert.deepEqual(await bothClaims(pool, names, claimArgs('me'), 10), ['k:0', 'x:0']);
});

test('a held key gives its next event to its holder only; a failed event holds back the events behind it', async (t) => {
  const { pool, names } = await setup(t);
  const events = [];
  for (let n = 0; n < 4; n++) for (const key of ['a', 'b', 'c']) events.push(step(key, n));
  events.push(step('d', 0, 'latest'), step('d', 1, 'latest'));
  await enqueue(pool, events, { schema: names.schema });
  // `me` holds a's steps 0 and 1; `other` holds b's step 0; c's step 0 failed and waits for its retry.
  await lease(pool, names, `key = 'a' AND (payload->>'step')::int <= 1`, 'me');
  await lease(pool, names, `key = 'b' AND payload->>'step' = '0'`, 'other');
  await pool.query(
    `UPDATE ${names.events} SET run_at = now() + interval '1 hour', attempts = 1
      WHERE key = 'c' AND payload->>'step' = '0'`,
  );
  // One more event of each key it may take: a's next (behind what it holds) and d's head; never b or c.
  // (A window that ends before d's head sees less than the whole queue; these ones see it all.)
  for (const window of [9, 100])
    assert.deepEqual(await bothClaims(pool, names, claimArgs('me'), window), ['a:2', 'd:0']);
  assert.deepEqual(await bothClaims(pool, names, claimArgs('other'), 100), ['b:1', 'd:0']);
  // A lease with less than half its term left is not "held" any more: its holder stops claiming behind it.
  await lease(pool, names, `key = 'a' AND (payload->>'step')::int <= 1`, 'me', 10_000);
  assert.deepEqual(await bothClaims(pool, names, claimArgs('me'), 100), ['d:0']);
  // A coalesced type is never taken behind an event of its key held here (its completion removes it).
  await lease(pool, names, `key = 'd' AND payload->>'step' = '0'`, 'me');
  const coalescing = claimArgs('me', { coalesce: ['latest'] });
  assert.deepEqual(await bothClaims(pool, names, coalescing, 100), []);
  assert.deepEqual(await bothClaims(pool, names, claimArgs('me'), 100), ['d:1']);
});

test('two consumers claiming the same keys at once: each key is held by one of them, its oldest events, in order', async (t) => {
  const { pool, names } = await setup(t);
  const keys = 20;
  const perKey = 15;
  const events = [];
  for (let n = 0; n < perKey; n++) for (let k = 0; k < keys; k++) events.push(step(`k${k}`, n));
  await enqueue(pool, events, { schema: names.schema });
  const owners = ['one', 'two'];
  const completed = new Map<string, number[]>();
  let claimedByTwo = 0;
  for (let round = 0; round < 200; round++) {
    // Both claims run at once, each on its own connection, windowed as the consumer claims.
    const claims = await Promise.all(
      owners.map((owner) => claimEvents(pool, names, { ...claimArgs(owner, { limit: 12 }), window: 24 })),
    );
    claimedByTwo += claims[1]!.length;
    const { rows } = await pool.query<{ key: string; step: number; locked_by: string | null }>(
      `SELECT key, (payload->>'step')::int AS step, locked_by FROM ${names.events} ORDER BY id`,
    );
    if (rows.length === 0) break;
    const holders = new Map<string, Set<string>>();
    const heldPrefix = new Map<string, boolean>();
    for (const row of rows) {
      const held = row.locked_by;
      if (held !== null) holders.set(row.key, (holders.get(row.key) ?? new Set()).add(held));
      // Held events of a key come first: nothing held after an event that is not.
      const stillPrefix = heldPrefix.get(row.key) ?? true;
      assert.ok(held === null || stillPrefix, `${row.key}: step ${row.step} held behind one that is not`);
      heldPrefix.set(row.key, stillPrefix && held !== null);
    }
    for (const [key, set] of holders) assert.equal(set.size, 1, `${key} held by one consumer`);
    // Each consumer completes the oldest event it holds of every key, as its handlers would one by one.
    for (const owner of owners) {
      const { rows: held } = await pool.query<{ id: string; attempts: number; key: string; step: number }>(
        `SELECT DISTINCT ON (key) id::text, attempts, key, (payload->>'step')::int AS step
           FROM ${names.events} WHERE locked_by = $1 ORDER BY key, id`,
        [owner],
      );
      await completeEvents(pool, names, {
        owner,
        plain: held.map(({ id, attempts }) => ({ id, attempts })),
        coalesced: [],
      });
      for (const row of held) completed.set(row.key, [...(completed.get(row.key) ?? []), row.step]);
    }
  }
  for (let k = 0; k < keys; k++)
    assert.deepEqual(completed.get(`k${k}`), [...Array(perKey).keys()], `k${k} completed in order`);
  assert.ok(claimedByTwo > 0, 'the second consumer took part');
});
