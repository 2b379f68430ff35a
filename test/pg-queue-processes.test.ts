import assert from 'node:assert/strict';
import { test } from 'node:test';
import pg from 'pg';
import { enqueue, pgEventQueue, type QueueEvent } from '../lib/pg.js';
import { adminQuery, dropSchema, pgUrl, randomSuffix, runService, testSchema } from './helpers/pg.js';
import { event, type Spawned, spawnFixture, until } from './helpers/process.js';

function handledIds(consumer: Spawned): string[] {
  return consumer.logs.filter(event('fixture:handled')).flatMap((line) => line.ids as string[]);
}

test('two consumer processes share a table and never run the same event twice', async (t) => {
  const schema = testSchema();
  const url = pgUrl(`steward-test-procs-${randomSuffix()}`);
  const pool = new pg.Pool({ connectionString: url, max: 1 });
  t.after(async () => {
    await pool.end();
    await dropSchema(schema);
  });
  const env = { PG_URL: url, SCHEMA: schema, STEWARD_LOG_LEVEL: 'info' };
  const consumers = [spawnFixture('pg-queue-consumer.js', env), spawnFixture('pg-queue-consumer.js', env)];
  t.after(() => {
    for (const consumer of consumers) consumer.killAll();
  });
  await Promise.all(consumers.map((c) => c.waitForLog(event('fixture:running'), 15_000, 'consumer running')));

  const events = Array.from({ length: 600 }, (_, i) => ({
    type: 'work',
    key: i % 3 === 0 ? `k${i % 12}` : undefined,
    payload: i,
  }));
  const ids: string[] = [];
  for (let i = 0; i < events.length; i += 100)
    ids.push(...(await enqueue(pool, events.slice(i, i + 100), { schema })));
  await until(
    () => handledIds(consumers[0]!).length + handledIds(consumers[1]!).length >= ids.length,
    30_000,
    'all handled',
  );
  for (const consumer of consumers) consumer.child.kill('SIGTERM');
  await Promise.all(consumers.map((c) => c.exited));

  const first = handledIds(consumers[0]!);
  const second = handledIds(consumers[1]!);
  t.diagnostic(`split: ${first.length} + ${second.length}`);
  const all = [...first, ...second];
  assert.equal(new Set(all).size, all.length, 'no event ran twice');
  assert.deepEqual([...all].sort(), [...ids].sort(), 'every event ran');
  assert.ok(first.length > 0 && second.length > 0, 'both consumers took part');
  const rows = await adminQuery<{ n: number }>(`SELECT count(*)::int AS n FROM "${schema}"."events"`);
  assert.equal(rows[0]!.n, 0);
});

test('kill -9 mid-handler: the event runs again elsewhere once its lease expires', async (t) => {
  const schema = testSchema();
  const url = pgUrl(`steward-test-kill-${randomSuffix()}`);
  const pool = new pg.Pool({ connectionString: url, max: 1 });
  t.after(async () => {
    await pool.end();
    await dropSchema(schema);
  });
  const lease = 1_500;
  const victim = spawnFixture('pg-queue-consumer.js', {
    PG_URL: url,
    SCHEMA: schema,
    HANDLER: 'hang',
    LEASE: String(lease),
  });
  t.after(() => victim.killAll());
  await victim.waitForLog(event('fixture:running'), 15_000, 'victim running');
  const [id] = await enqueue(pool, { type: 'work', key: 'order-1', payload: { n: 1 } }, { schema });
  const started = await victim.waitForLog(event('fixture:started', { id }), 10_000, 'handler started');
  assert.equal(started.attempts, 1);
  const killedAt = Date.now();
  victim.killAll();
  await victim.exited;

  const runs: Array<{ event: QueueEvent; at: number }> = [];
  const rescuer = runService(
    pgEventQueue({
      name: 'rescuer',
      connectionString: url,
      schema,
      pollInterval: 200,
      handlers: { work: (e: QueueEvent) => void runs.push({ event: e, at: Date.now() }) },
    }),
  );
  t.after(() => rescuer.stop());
  await until(() => runs.length === 1, 10_000, 'event run again');
  const after = runs[0]!.at - (started.time as number);
  t.diagnostic(
    `ran again ${after} ms after the first start (lease ${lease} ms), ${runs[0]!.at - killedAt} ms after kill -9`,
  );
  assert.equal(runs[0]!.event.id, id);
  assert.equal(runs[0]!.event.attempts, 2, 'the crashed run counts as an attempt');
  // The lease started at the claim, a moment before the handler's first start was logged.
  assert.ok(after >= lease - 200, `not before the lease expired (${after} ms)`);
  await until(
    async () => {
      const rows = await adminQuery<{ n: number }>(`SELECT count(*)::int AS n FROM "${schema}"."events"`);
      return rows[0]!.n === 0;
    },
    5_000,
    'completed',
  );
  assert.equal(runs.length, 1);
});

test('kill -9 holding several events of a key: another consumer runs them all again, in order', async (t) => {
  const schema = testSchema();
  const url = pgUrl(`steward-test-kill-key-${randomSuffix()}`);
  const pool = new pg.Pool({ connectionString: url, max: 1 });
  t.after(async () => {
    await pool.end();
    await dropSchema(schema);
  });
  const victim = spawnFixture('pg-queue-consumer.js', {
    PG_URL: url,
    SCHEMA: schema,
    HANDLER: 'hang',
    LEASE: '1500',
  });
  t.after(() => victim.killAll());
  await victim.waitForLog(event('fixture:running'), 15_000, 'victim running');
  const steps = [1, 2, 3, 4, 5];
  const ids = await enqueue(
    pool,
    steps.map((n) => ({ type: 'work', key: 'order-1', payload: { n } })),
    { schema },
  );
  await victim.waitForLog(event('fixture:started', { id: ids[0] }), 10_000, 'first step started');
  // The victim takes the later steps too while the first one hangs: it dies holding all five.
  await until(
    async () => {
      const rows = await adminQuery<{ n: number }>(
        `SELECT count(*)::int AS n FROM "${schema}"."events" WHERE locked_by IS NOT NULL`,
      );
      return rows[0]!.n === steps.length;
    },
    10_000,
    'all steps held by the victim',
  );
  assert.equal(victim.logs.filter(event('fixture:started')).length, 1, 'only the first step started');
  victim.killAll();
  await victim.exited;

  const runs: number[] = [];
  let active = 0;
  let overlapped = false;
  const rescuer = runService(
    pgEventQueue({
      name: 'rescuer',
      connectionString: url,
      schema,
      pollInterval: 200,
      concurrency: 8,
      handlers: {
        async work(e: QueueEvent) {
          overlapped ||= active > 0;
          active++;
          runs.push((e.payload as { n: number }).n);
          await new Promise((resolve) => setTimeout(resolve, 5));
          active--;
        },
      },
    }),
  );
  t.after(() => rescuer.stop());
  await until(() => runs.length === steps.length, 15_000, 'steps run again');
  assert.deepEqual(runs, steps, 'in order');
  assert.equal(overlapped, false, 'one at a time');
});
