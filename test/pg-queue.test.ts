import assert from 'node:assert/strict';
import { test } from 'node:test';
import pg from 'pg';
import { claimEvents } from '../lib/listeners/pg/sql/claim-events.js';
import { enqueue, migrate, pgEventQueue, type QueueEvent, queueNames } from '../lib/pg.js';
import { adminQuery, dropSchema, pgUrl, randomSuffix, runService, testSchema } from './helpers/pg.js';
import { until } from './helpers/process.js';

function setup(t: { after(fn: () => unknown): void }) {
  const schema = testSchema();
  const app = `steward-test-queue-${randomSuffix()}`;
  const url = pgUrl(app);
  const pool = new pg.Pool({ connectionString: url, max: 2 });
  t.after(async () => {
    await pool.end();
    await dropSchema(schema);
  });
  return { schema, app, url, pool };
}

async function remaining(schema: string, table = 'events'): Promise<number> {
  const rows = await adminQuery<{ n: number }>(`SELECT count(*)::int AS n FROM "${schema}"."${table}"`);
  return rows[0]!.n;
}

test('events enqueued in a rolled-back transaction never run; committed ones do', async (t) => {
  const { schema, url, pool } = setup(t);
  const handled: unknown[] = [];
  const consumer = runService(
    pgEventQueue({
      name: 'q',
      connectionString: url,
      schema,
      handlers: { note: (event: QueueEvent) => void handled.push(event.payload) },
    }),
  );
  t.after(() => consumer.stop());
  await until(() => consumer.record.status.state === 'running', 10_000, 'consumer running');

  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    await enqueue(client, { type: 'note', payload: 'rolled back' }, { schema });
    await client.query('ROLLBACK');
    await client.query('BEGIN');
    await enqueue(client, [{ type: 'note', payload: 'committed' }], { schema });
    assert.equal(handled.length, 0, 'nothing runs before the commit');
    await client.query('COMMIT');
  } finally {
    client.release();
  }
  await until(() => handled.length === 1 && consumer.record.status.processed === 1, 5_000, 'committed event');
  await until(async () => (await remaining(schema)) === 0, 5_000, 'completion written');
  assert.deepEqual(handled, ['committed']);
});

test('same key: in order and never concurrent, with concurrency 8 across keys', async (t) => {
  const { schema, url, pool } = setup(t);
  const keys = ['a', 'b', 'c', 'd'];
  const perKey = 15;
  const events = [];
  for (let i = 0; i < perKey; i++) for (const key of keys) events.push({ type: 'step', key, payload: i });
  const active = new Map<string, number>();
  const seen = new Map<string, number[]>();
  let maxActiveKey = 0;
  let maxActive = 0;
  let running = 0;
  const consumer = runService(
    pgEventQueue({
      name: 'q',
      connectionString: url,
      schema,
      concurrency: 8,
      batchSize: 20,
      handlers: {
        async step(event: QueueEvent) {
          const key = event.key!;
          active.set(key, (active.get(key) ?? 0) + 1);
          running++;
          maxActiveKey = Math.max(maxActiveKey, active.get(key)!);
          maxActive = Math.max(maxActive, running);
          await new Promise((resolve) => setTimeout(resolve, 2 + Math.random() * 6));
          seen.set(key, [...(seen.get(key) ?? []), event.payload as number]);
          active.set(key, active.get(key)! - 1);
          running--;
        },
      },
    }),
  );
  t.after(() => consumer.stop());
  await until(() => consumer.record.status.state === 'running', 10_000, 'consumer running');
  await enqueue(pool, events, { schema });
  await until(() => consumer.record.status.processed === events.length, 20_000, 'all events');
  assert.equal(maxActiveKey, 1, 'a key never ran twice at once');
  assert.ok(maxActive > 1, `keys ran in parallel (max ${maxActive})`);
  for (const key of keys) assert.deepEqual(seen.get(key), [...Array(perKey).keys()], `order of ${key}`);
});

test('two consumers: the next events of a held key run in order behind it, and a failure holds them back', async (t) => {
  const { schema, url, pool } = setup(t);
  // More keys than one consumer holds at once (batchSize + concurrency events), so both take part.
  const keys = Array.from({ length: 16 }, (_, i) => `k${i}`);
  const perKey = 12;
  const events = [];
  for (let i = 0; i < perKey; i++) for (const key of keys) events.push({ type: 'step', key, payload: i });
  const active = new Map<string, number>();
  const starts = new Map<string, number[]>();
  const done = new Map<string, number[]>();
  const byConsumer = new Map<string, number>();
  let maxActiveKey = 0;
  let openGate!: () => void;
  const gate = new Promise<void>((resolve) => {
    openGate = resolve;
  });
  const options = (name: string) => ({
    name,
    connectionString: url,
    schema,
    concurrency: 4,
    batchSize: 8,
    pollInterval: 50,
    retry: { initialDelay: 20, maxDelay: 40, jitter: 0 },
    handlers: {
      async step(event: QueueEvent) {
        const key = event.key!;
        const step = event.payload as number;
        active.set(key, (active.get(key) ?? 0) + 1);
        maxActiveKey = Math.max(maxActiveKey, active.get(key)!);
        starts.set(key, [...(starts.get(key) ?? []), step]);
        try {
          if (key === 'k0' && step === 0) await gate;
          await new Promise((resolve) => setTimeout(resolve, 1 + Math.random() * 3));
          // Every fifth step fails once: the steps behind it must wait for its retry.
          if (step % 5 === 2 && event.attempts === 1) throw new Error('first attempt fails');
          done.set(key, [...(done.get(key) ?? []), step]);
          byConsumer.set(name, (byConsumer.get(name) ?? 0) + 1);
        } finally {
          active.set(key, active.get(key)! - 1);
        }
      },
    },
  });
  const consumers = [runService(pgEventQueue(options('c1'))), runService(pgEventQueue(options('c2')))];
  t.after(() => Promise.all(consumers.map((c) => c.stop())));
  await until(() => consumers.every((c) => c.record.status.state === 'running'), 10_000, 'consumers running');
  await enqueue(pool, events, { schema });
  // While k0's first step is held up, its holder takes the next steps of k0 too (no other consumer can).
  await until(
    async () => {
      const rows = await adminQuery<{ owners: number; held: number }>(
        `SELECT count(DISTINCT locked_by)::int AS owners, count(*)::int AS held
           FROM "${schema}"."events" WHERE key = 'k0' AND locked_by IS NOT NULL`,
      );
      return rows[0]!.held >= 3 && rows[0]!.owners === 1;
    },
    10_000,
    'later steps of k0 claimed behind its held first step',
  );
  openGate();
  await until(async () => (await remaining(schema)) === 0, 30_000, 'queue drained');
  t.diagnostic(`split: ${[...byConsumer].map(([name, n]) => `${name} ${n}`).join(', ')}`);
  assert.equal(maxActiveKey, 1, 'a key never ran twice at once');
  for (const key of keys) {
    assert.deepEqual(done.get(key), [...Array(perKey).keys()], `successes of ${key} in order`);
    const seq = starts.get(key)!;
    assert.ok(
      seq.every((step, i) => i === 0 || step >= seq[i - 1]!),
      `no step of ${key} started before an earlier one succeeded: ${seq.join(',')}`,
    );
  }
  assert.equal(
    consumers.reduce((n, c) => n + c.record.status.failed, 0),
    keys.length * [...Array(perKey).keys()].filter((step) => step % 5 === 2).length,
    'each failing step failed once',
  );
  assert.ok(byConsumer.size === 2, 'both consumers took part');
});

test('coalescing: the handler sees the newest payload once and the older events go with it', async (t) => {
  const { schema, url, pool } = setup(t);
  const calls: unknown[] = [];
  const options = {
    name: 'q',
    connectionString: url,
    schema,
    coalesce: ['changed'],
    handlers: {
      changed: (event: QueueEvent) => void calls.push(event.payload),
      other: () => {},
    },
  };
  // Create the tables, then enqueue while no consumer runs so the duplicates pile up.
  const first = runService(pgEventQueue(options));
  await until(() => first.record.status.state === 'running', 10_000, 'migrated');
  await first.stop();
  await enqueue(
    pool,
    [1, 2, 3, 4, 5].map((v) => ({ type: 'changed', key: 'host-1', payload: { v } })),
    { schema },
  );
  await enqueue(pool, { type: 'changed', key: 'host-2', payload: { v: 9 } }, { schema });
  const consumer = runService(pgEventQueue(options));
  t.after(() => consumer.stop());
  await until(async () => (await remaining(schema)) === 0, 10_000, 'queue drained');
  assert.deepEqual(
    calls.map((p) => (p as { v: number }).v).sort(),
    [5, 9],
    'one call per key with the newest payload',
  );
  assert.equal(consumer.record.status.duplicates, 4);
  assert.equal(consumer.record.status.processed, 2);
});

test('failures retry with exponential backoff, then move to the dead-letter table with the last error', async (t) => {
  const { schema, url, pool } = setup(t);
  const attempts: Array<{ at: number; attempt: number }> = [];
  const consumer = runService(
    pgEventQueue({
      name: 'q',
      connectionString: url,
      schema,
      maxAttempts: 3,
      retry: { initialDelay: 300, maxDelay: 10_000, jitter: 0 },
      pollInterval: 5_000,
      handlers: {
        flaky(event: QueueEvent) {
          attempts.push({ at: Date.now(), attempt: event.attempts });
          throw new Error(`boom ${event.attempts}`);
        },
      },
    }),
  );
  t.after(() => consumer.stop());
  await until(() => consumer.record.status.state === 'running', 10_000, 'consumer running');
  const [id] = await enqueue(pool, { type: 'flaky', key: 'k', payload: { n: 1 } }, { schema });
  await until(() => consumer.record.status.deadLettered === 1, 10_000, 'dead-lettered');
  assert.deepEqual(
    attempts.map((a) => a.attempt),
    [1, 2, 3],
  );
  const gaps = [attempts[1]!.at - attempts[0]!.at, attempts[2]!.at - attempts[1]!.at];
  t.diagnostic(`retry gaps: ${gaps.join(', ')} ms (expected 300, 600)`);
  // Lower bounds prove the doubling; upper bounds leave room for a loaded machine.
  assert.ok(gaps[0]! >= 290 && gaps[0]! < 1_500, `first retry after ${gaps[0]} ms`);
  assert.ok(gaps[1]! >= 590 && gaps[1]! < 2_000, `second retry after ${gaps[1]} ms`);
  assert.equal(consumer.record.status.failed, 2);
  await until(async () => (await remaining(schema)) === 0, 5_000, 'moved out of the queue');
  const dead = await adminQuery<{ id: string; attempts: number; last_error: string; payload: unknown }>(
    `SELECT id, attempts, last_error, payload FROM "${schema}"."events_dead"`,
  );
  assert.deepEqual(dead, [{ id, attempts: 3, last_error: 'Error: boom 3', payload: { n: 1 } }]);
});

test('graceful stop releases claimed but unstarted events at once, without counting an attempt', async (t) => {
  const { schema, url, pool } = setup(t);
  let release: () => void = () => {};
  const started: string[] = [];
  const consumer = runService(
    pgEventQueue({
      name: 'q',
      connectionString: url,
      schema,
      concurrency: 1,
      batchSize: 10,
      handlers: {
        async slow(event: QueueEvent) {
          started.push(event.id);
          await new Promise<void>((resolve) => {
            release = resolve;
          });
        },
      },
    }),
  );
  await until(() => consumer.record.status.state === 'running', 10_000, 'consumer running');
  const ids = await enqueue(
    pool,
    [1, 2, 3, 4].map((n) => ({ type: 'slow', payload: n })),
    { schema },
  );
  await until(() => started.length === 1, 5_000, 'first handler started');
  const stopping = consumer.stop();
  setTimeout(() => release(), 100);
  await stopping;
  assert.deepEqual(started, [ids[0]], 'no new handler started after stop');
  const rows = await adminQuery<{ id: string; attempts: number; locked_by: string | null }>(
    `SELECT id, attempts, locked_by FROM "${schema}"."events" ORDER BY id`,
  );
  assert.deepEqual(
    rows,
    ids.slice(1).map((id) => ({ id, attempts: 0, locked_by: null })),
    'the running event completed; the others are free again',
  );
});

test('the lease is renewed while a handler runs longer than it: no other consumer takes the event', async (t) => {
  const { schema, url, pool } = setup(t);
  const runs: string[] = [];
  const slow = async (event: QueueEvent) => {
    runs.push(event.id);
    await new Promise((resolve) => setTimeout(resolve, 3_500));
  };
  const options = { connectionString: url, schema, lease: 1_000, pollInterval: 100, handlers: { slow } };
  const first = runService(pgEventQueue({ name: 'first', ...options }));
  t.after(() => first.stop());
  await until(() => first.record.status.state === 'running', 10_000, 'first running');
  await enqueue(pool, { type: 'slow' }, { schema });
  await until(() => runs.length === 1, 5_000, 'handler started');
  const second = runService(pgEventQueue({ name: 'second', ...options }));
  t.after(() => second.stop());
  await until(() => first.record.status.processed === 1, 10_000, 'handler finished');
  assert.equal(runs.length, 1, 'three leases long, one run');
  assert.equal(second.record.status.processed, 0);
  await until(async () => (await remaining(schema)) === 0, 5_000, 'completed');
});

test('a key stuck in retries ahead of the claim window does not starve the keys behind it', async (t) => {
  const { schema, url, pool } = setup(t);
  const ran: string[] = [];
  const consumer = runService(
    pgEventQueue({
      name: 'q',
      connectionString: url,
      schema,
      batchSize: 10,
      pollInterval: 200,
      depthInterval: 100,
      retry: { initialDelay: 60_000, maxDelay: 60_000, jitter: 0 },
      handlers: {
        work(event: QueueEvent) {
          if (event.key === 'stuck') throw new Error('downstream unavailable');
          ran.push(event.key!);
        },
      },
    }),
  );
  t.after(() => consumer.stop());
  await until(() => consumer.record.status.state === 'running', 10_000, 'consumer running');
  // More events of the stuck key than the claim window (500) holds, then one of another key.
  await enqueue(
    pool,
    Array.from({ length: 600 }, () => ({ type: 'work', key: 'stuck' })),
    { schema },
  );
  await until(() => consumer.record.status.failed === 1, 5_000, 'head of the stuck key failed');
  await enqueue(pool, { type: 'work', key: 'free' }, { schema });
  await until(() => ran.includes('free'), 10_000, 'the free key ran');
  assert.equal(consumer.record.status.failed, 1, 'the stuck key waits for its retry');
});

test('migrations apply once under concurrent starts and are idempotent', async (t) => {
  const { schema, pool } = setup(t);
  const names = queueNames(schema, 'jobs');
  const applied = await Promise.all([migrate(pool, names), migrate(pool, names), migrate(pool, names)]);
  assert.deepEqual(applied.flat().sort(), [1, 2, 3, 4, 5], 'each migration applied exactly once');
  assert.equal(applied.filter((ids) => ids.length === 0).length, 2);
  assert.deepEqual(await migrate(pool, names), []);
  const tables = await adminQuery<{ table_name: string }>(
    'SELECT table_name FROM information_schema.tables WHERE table_schema = $1 ORDER BY table_name',
    [schema],
  );
  assert.deepEqual(
    tables.map((row) => row.table_name),
    ['jobs', 'jobs_dead', 'jobs_migrations'],
  );
});

test('a delayed event runs at its time through the polling fallback; depth and oldest age are reported', async (t) => {
  const { schema, url, pool } = setup(t);
  const ran: number[] = [];
  const consumer = runService(
    pgEventQueue({
      name: 'q',
      connectionString: url,
      schema,
      pollInterval: 100,
      depthInterval: 100,
      handlers: { later: () => void ran.push(Date.now()) },
    }),
  );
  t.after(() => consumer.stop());
  await until(() => consumer.record.status.state === 'running', 10_000, 'consumer running');
  const runAt = new Date(Date.now() + 700);
  await enqueue(pool, { type: 'later', runAt }, { schema });
  await until(() => consumer.record.status.queueDepth === 1, 5_000, 'depth 1 while waiting');
  assert.ok((consumer.record.status.oldestAgeMs ?? -1) >= 0);
  await until(() => ran.length === 1, 5_000, 'delayed event');
  assert.ok(ran[0]! >= runAt.getTime() - 20, `ran ${runAt.getTime() - ran[0]!} ms early`);
  await until(() => consumer.record.status.queueDepth === 0, 5_000, 'depth back to 0');
});

test('a claim rewrites every event in place (HOT): pages keep room for the leased versions', async (t) => {
  const { schema, pool } = setup(t);
  const names = queueNames(schema, 'events');
  await migrate(pool, names);
  // The smallest events there are, keyed and not, and an owner as long as a Kubernetes pod's host name.
  await enqueue(
    pool,
    Array.from({ length: 2_000 }, (_, i) => ({
      type: 'small',
      key: i % 2 === 0 ? `k${i % 100}` : undefined,
    })),
    { schema },
  );
  const owner = `checkout-api-7f9c8d6b5-x2x4q:${process.pid}:0123abcd`;
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    const rows = await claimEvents(client, names, {
      owner,
      limit: 2_000,
      leaseMs: 30_000,
      types: ['small'],
      coalesce: [],
    });
    // This transaction's own counts: exact, and not subject to the statistics collector's delay.
    const { rows: counts } = await client.query<{ updated: string; hot: string }>(
      `SELECT pg_stat_get_xact_tuples_updated($1::regclass) AS updated,
              pg_stat_get_xact_tuples_hot_updated($1::regclass) AS hot`,
      [`"${schema}"."events"`],
    );
    await client.query('ROLLBACK');
    assert.ok(rows.length >= 1_000, `claimed ${rows.length}`);
    assert.equal(Number(counts[0]!.updated), rows.length);
    assert.equal(Number(counts[0]!.hot), rows.length, 'every leased version stayed on its page');
  } finally {
    client.release();
  }
});

test('schema and table names are validated identifiers: injection attempts are refused', async () => {
  const url = pgUrl('steward-test-identifiers');
  for (const schema of ['public; DROP TABLE x', 'a"b', '1abc', 'x'.repeat(64), '']) {
    assert.throws(() => pgEventQueue({ name: 'q', connectionString: url, schema, handlers: { a() {} } }), {
      code: 'STEWARD_ERR_INVALID_IDENTIFIER',
    });
  }
  assert.throws(
    () =>
      pgEventQueue({ name: 'q', connectionString: url, table: 'events" CASCADE --', handlers: { a() {} } }),
    { code: 'STEWARD_ERR_INVALID_IDENTIFIER', message: /`table`/ },
  );
  const client = { query: () => assert.fail('no query may run') } as never;
  await assert.rejects(enqueue(client, { type: 'a' }, { schema: 'x;DROP SCHEMA public' }), {
    code: 'STEWARD_ERR_INVALID_IDENTIFIER',
  });
});

test('enqueue validates every event before any query runs', async () => {
  const client = { query: () => assert.fail('no query may run') } as never;
  const cases: Array<[unknown, RegExp]> = [
    [{ type: '' }, /`events\[0\]\.type`/],
    [[{ type: 'a' }, { type: 'a', key: { id: 1 } }], /`events\[1\]\.key`/],
    [{ type: 'a', runAt: new Date('nope') }, /`events\[0\]\.runAt`/],
    [{ type: 'a', payload: 10n }, /`events\[0\]\.payload`/],
    [{ type: 'a', payload: () => {} }, /`events\[0\]\.payload`/],
  ];
  for (const [events, message] of cases) {
    await assert.rejects(enqueue(client, events as never), { code: 'STEWARD_ERR_INVALID_OPTION', message });
  }
  await assert.rejects(enqueue(client, { type: 'a', typo: 1 } as never), {
    code: 'STEWARD_ERR_UNKNOWN_OPTION',
  });
  assert.deepEqual(await enqueue(client, []), []);
});

test('queue options are validated with coded errors naming option, range and value', () => {
  const base = { name: 'q', connectionString: pgUrl('x'), handlers: { a() {} } };
  const cases: Array<[Record<string, unknown>, string, RegExp]> = [
    [{ concurrency: 0 }, 'STEWARD_ERR_INVALID_OPTION', /`concurrency`.*between 1 and 10000.*`0`/],
    [{ batchSize: 2.5 }, 'STEWARD_ERR_INVALID_OPTION', /`batchSize`/],
    [{ lease: 10 }, 'STEWARD_ERR_INVALID_OPTION', /`lease`.*>= 1000/],
    [{ maxAttempts: -1 }, 'STEWARD_ERR_INVALID_OPTION', /`maxAttempts`/],
    [{ coalesce: ['missing'] }, 'STEWARD_ERR_INVALID_OPTION', /`coalesce`.*missing has none/],
    [{ retry: { initialDelay: 500, maxDelay: 100 } }, 'STEWARD_ERR_INVALID_OPTION', /`retry.maxDelay`/],
    [{ handlers: {} }, 'STEWARD_ERR_INVALID_OPTION', /`handlers`/],
    [{ handlers: { a: 1 } }, 'STEWARD_ERR_INVALID_OPTION', /`handlers.a`.*function/],
    [{ concurrensy: 2 }, 'STEWARD_ERR_UNKNOWN_OPTION', /Did you mean `concurrency`/],
    [{ connectionString: '' }, 'STEWARD_ERR_INVALID_OPTION', /`connectionString`/],
  ];
  for (const [override, code, message] of cases) {
    assert.throws(
      () => pgEventQueue({ ...base, ...override } as never),
      { code, message },
      JSON.stringify(override),
    );
  }
});
