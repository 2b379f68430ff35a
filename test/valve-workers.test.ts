import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import pg from 'pg';
import { amqpListener } from '../lib/amqp.js';
import { enqueue, pgEventQueue } from '../lib/pg.js';
import { untilQueueTables } from './helpers/dispatch-runs.js';
import { addressFromReady, get } from './helpers/http.js';
import { adminQuery, dropSchema, PG_BASE, testSchema } from './helpers/pg.js';
import { event, freePort, type LogLine, type Spawned, spawnFixture, until } from './helpers/process.js';

// `valve: 'workers'`: a listener whose handlers run in the services sibling (sharing the database with the
// HTTP workers) takes in only what the workers' load admits.

const spawned: Spawned[] = [];
const schemas: string[] = [];
after(async () => {
  for (const fixture of spawned) fixture.killAll();
  for (const schema of schemas) await dropSchema(schema);
});

test("valve accepts 'none' and 'workers' on the listeners and refuses anything else", () => {
  const queue = { name: 'q', connectionString: PG_BASE, handlers: { work: async () => {} } };
  const amqp = { name: 'a', host: '127.0.0.1', queue: 'q', handler: async () => {} };
  assert.doesNotThrow(() => pgEventQueue({ ...queue, valve: 'workers' }));
  assert.doesNotThrow(() => amqpListener({ ...amqp, valve: 'none' }));
  for (const make of [
    () => pgEventQueue({ ...queue, valve: 'sibling' as 'workers' }),
    () => amqpListener({ ...amqp, valve: true as unknown as 'workers' }),
  ])
    assert.throws(make, (error: { code?: string; message: string }) => {
      assert.equal(error.code, 'STEWARD_ERR_INVALID_OPTION');
      assert.match(error.message, /valve/);
      assert.match(error.message, /'none' or 'workers'/);
      return true;
    });
});

async function loadLimit(control: string): Promise<number> {
  const metrics = await get(`${control}/metrics`);
  const match = /^steward_valve_load_limit(?:\{[^}]*\})? (\d+)/m.exec(metrics.body);
  assert.ok(match, 'steward_valve_load_limit is exported');
  return Number(match[1]);
}

test("valve: 'workers' holds the sibling's handlers to the workers' load, at least one at a time, and reopens", async () => {
  const schema = testSchema();
  schemas.push(schema);
  await adminQuery(`CREATE SCHEMA ${schema}`);
  const controlPort = await freePort();
  const control = `http://127.0.0.1:${controlPort}`;
  const app = spawnFixture('dispatch-app.js', {
    DISPATCH_SCHEMA: schema,
    DISPATCH_SERVICES: 'valve-workers-services.js',
    DISPATCH_NAMES_HANDLED: '',
    PORT: String(await freePort()),
    FIXTURE_OPTIONS: JSON.stringify({ workers: 2, control: { port: controlPort } }),
  });
  spawned.push(app);
  const ready = await app.waitForLogs(event('worker:ready'), 2, 30_000);
  const address = addressFromReady(ready[0]!);
  await untilQueueTables(schema);
  const client = new pg.Client({ connectionString: PG_BASE });
  await client.connect();
  try {
    for (let batch = 0; batch < 8; batch++)
      await enqueue(
        client,
        Array.from({ length: 500 }, (_, i) => ({ type: 'work', key: `w-${batch}-${i}` })),
        { schema },
      );
  } finally {
    await client.end();
  }
  const handlerStarts = () => app.logs.filter(event('fixture:sibling:handler'));
  // Calm workers: the listener runs up to its concurrency.
  await app.waitForLog(
    (line) => line.msg === 'fixture:sibling:handler' && (line.running as number) >= 8,
    30_000,
  );

  // Both workers block their loops in turn, as long CPU-bound requests would.
  const stop = new AbortController();
  const load = (async () => {
    while (!stop.signal.aborted)
      await Promise.all([1, 2].map(() => get(`http://${address}/block?ms=300`).catch(() => undefined)));
  })();
  try {
    await until(async () => (await loadLimit(control)) <= 2, 30_000, 'the load limit at the floor');
    // What was in flight above the limit finishes (50 ms each); then the next starts stay near the floor.
    await new Promise((resolve) => setTimeout(resolve, 300));
    const seen = handlerStarts().length;
    await until(
      async () => handlerStarts().length >= seen + 10,
      30_000,
      'handlers keep running while throttled',
    );
    const throttled: LogLine[] = handlerStarts().slice(seen, seen + 10);
    const most = Math.max(...throttled.map((line) => line.running as number));
    assert.ok(
      most <= 4,
      `at most ${most} handlers at once while the workers are overloaded (concurrency 16)`,
    );
  } finally {
    stop.abort();
    await load;
  }
  // The workers calm down: the limit rises and the listener runs many at once again.
  const before = handlerStarts().length;
  await until(
    async () =>
      handlerStarts()
        .slice(before)
        .some((line) => (line.running as number) >= 8),
    30_000,
    'the valve reopened',
  );
});
