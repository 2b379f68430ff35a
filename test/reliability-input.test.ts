import assert from 'node:assert/strict';
import { test } from 'node:test';
import pg from 'pg';
import pino from 'pino';
import { amqpListener } from '../lib/amqp.js';
import { enqueue, migrate, pgEventQueue, type QueueEvent, queueNames } from '../lib/pg.js';
import {
  BROKER,
  declareQueue,
  deleteQueues,
  drainQueue,
  publish,
  runService,
  uniqueQueue,
} from './helpers/amqp.js';
import {
  adminQuery,
  dropSchema,
  pgUrl,
  randomSuffix,
  runService as runPgService,
  testSchema,
} from './helpers/pg.js';
import { until } from './helpers/process.js';
import { deferrer, explained } from './helpers/teardown.js';

test('AMQP: a body that is not JSON fails per message, is dead-lettered at maxDeliveries, and consuming goes on', async (t) => {
  const defer = deferrer(t);
  const queue = uniqueQueue('badbody');
  await declareQueue(queue, true);
  defer(() => deleteQueues(queue, `${queue}.dead`));
  const handled: unknown[] = [];
  const service = runService(
    amqpListener({
      name: 'json-consumer',
      ...BROKER,
      queue,
      maxDeliveries: 3,
      handler: (message) => {
        const text = Buffer.isBuffer(message.body) ? message.body.toString('utf8') : String(message.body);
        handled.push(JSON.parse(text));
      },
    }),
  );
  defer(() => service.stop());
  await publish(queue, [
    { message_id: 'ok-1', body: '{"n":1}' },
    { message_id: 'truncated', body: '{"n":' },
    { message_id: 'binary', body: Buffer.from([0xff, 0xfe, 0x00, 0x7b]) },
    { message_id: 'ok-2', body: '{"n":2}' },
  ]);
  const dead = await explained(
    service,
    drainQueue(`${queue}.dead`, (ids) => ids.length >= 2, 15_000),
  );
  assert.deepEqual(dead.sort(), ['binary', 'truncated']);
  await until(() => handled.length === 2, 5_000, 'the valid messages');
  assert.deepEqual(handled, [{ n: 1 }, { n: 2 }]);
  const failures = service.logs.filter((line) => line.msg === 'amqp:message:failed');
  assert.equal(failures.length, 4, 'two failed runs for each bad message before the third is final');
  assert.ok(failures.every((line) => (line.err as { type?: string }).type === 'SyntaxError'));
  const status = service.record.status;
  assert.equal(status.state, 'running');
  assert.equal(status.restarts, 0, 'a bad message never crashes the listener');
  assert.equal(status.deadLettered, 2);
  assert.equal(status.processed, 2);
});

test('pg queue: malformed JSON cannot enter the table; a payload the handler rejects is dead-lettered', async (t) => {
  const defer = deferrer(t);
  const schema = testSchema();
  const url = pgUrl(`steward-test-badjson-${randomSuffix()}`);
  const pool = new pg.Pool({ connectionString: url, max: 2 });
  defer(async () => {
    await pool.end();
    await dropSchema(schema);
  });
  await migrate(pool, queueNames(schema, 'events'));
  // The payload column is jsonb: PostgreSQL itself refuses text that is not JSON.
  await assert.rejects(
    adminQuery(`INSERT INTO "${schema}".events (type, payload) VALUES ('parse', $1)`, ['{"n":']),
    { code: '22P02' },
  );
  // JSON that holds a string which is not JSON, as a careless producer would write it.
  await adminQuery(`INSERT INTO "${schema}".events (type, payload) VALUES ('parse', to_jsonb($1::text))`, [
    '{"n":',
  ]);
  await enqueue(pool, { type: 'parse', payload: '{"n":7}' }, { schema });
  const parsed: unknown[] = [];
  const consumer = runPgService(
    pgEventQueue({
      name: 'parser',
      connectionString: url,
      schema,
      maxAttempts: 2,
      retry: { initialDelay: 20, maxDelay: 20 },
      handlers: { parse: (event: QueueEvent) => void parsed.push(JSON.parse(event.payload as string)) },
    }),
  );
  defer(() => consumer.stop());
  await until(
    async () =>
      (await adminQuery(`SELECT 1 FROM "${schema}".events_dead`)).length === 1 && parsed.length === 1,
    10_000,
    'the bad payload dead-lettered and the good one handled',
  );
  const [dead] = await adminQuery<{ payload: unknown; attempts: number; last_error: string }>(
    `SELECT payload, attempts, last_error FROM "${schema}".events_dead`,
  );
  assert.equal(dead!.payload, '{"n":');
  assert.equal(dead!.attempts, 2);
  assert.match(dead!.last_error, /SyntaxError/);
  assert.deepEqual(parsed, [{ n: 7 }]);
  assert.equal(consumer.record.status.state, 'running');
  assert.equal(consumer.record.status.restarts, 0);
});

test('pg queue: an event type with no handler is never claimed, never crashes, is reported, and other types flow', async (t) => {
  const defer = deferrer(t);
  const schema = testSchema();
  const url = pgUrl(`steward-test-nohandler-${randomSuffix()}`);
  const pool = new pg.Pool({ connectionString: url, max: 2 });
  defer(async () => {
    await pool.end();
    await dropSchema(schema);
  });
  const seen: string[] = [];
  const warnings: Record<string, unknown>[] = [];
  const logger = pino({ level: 'warn' }, { write: (line: string) => void warnings.push(JSON.parse(line)) });
  const consumer = runPgService(
    pgEventQueue({
      name: 'known-types',
      connectionString: url,
      schema,
      pollInterval: 100,
      depthInterval: 100,
      handlers: { known: (event: QueueEvent) => void seen.push(String(event.payload)) },
    }),
    logger,
  );
  defer(() => consumer.stop());
  await until(() => consumer.record.status.state === 'running', 10_000, 'consumer running');
  await enqueue(
    pool,
    [
      { type: 'unknown', key: 'k', payload: 'for another consumer' },
      { type: 'known', key: 'k', payload: 'first' },
      { type: 'known', key: 'k', payload: 'second' },
    ],
    { schema },
  );
  await until(() => seen.length === 2, 5_000, 'the known events');
  assert.deepEqual(seen, ['first', 'second']);
  // Left for a consumer that has the handler (tables may be shared), untouched: no attempt, no lease.
  const [row] = await adminQuery<{ attempts: number; locked_by: string | null }>(
    `SELECT attempts, locked_by FROM "${schema}".events WHERE type = 'unknown'`,
  );
  assert.deepEqual(row, { attempts: 0, locked_by: null });
  // ...but never silently: the consumer names the types it cannot run, with their counts.
  const warning = (await until(
    () => warnings.find((line) => line.msg === 'queue:unhandled-types'),
    5_000,
    'warning',
  )) as Record<string, unknown>;
  assert.equal(warning.code, 'STEWARD_ERR_NO_HANDLER');
  assert.deepEqual(warning.types, { unknown: 1 });
  assert.deepEqual(warning.handlers, ['known']);
  assert.equal(consumer.record.status.queueDepth, 0, 'depth counts only the types this consumer runs');
  const status = consumer.record.status;
  assert.equal(status.state, 'running');
  assert.equal(status.restarts, 0);
  assert.equal(status.failed, 0);
});

test('SQL injection through schema and table names is refused before any statement runs', async (t) => {
  const defer = deferrer(t);
  const canary = `steward_canary_${randomSuffix()}`;
  await adminQuery(`CREATE SCHEMA "${canary}"`);
  await adminQuery(`CREATE TABLE "${canary}".keep (id int)`);
  defer(() => dropSchema(canary));
  const schemasBefore = await adminQuery<{ nspname: string }>('SELECT nspname FROM pg_namespace');
  const attempts = [
    `x; DROP SCHEMA ${canary} CASCADE; --`,
    `${canary}".keep; DROP TABLE "${canary}".keep; --`,
    'public" CASCADE --',
    "x'; SELECT pg_sleep(10); --",
    'événements',
    'a b',
    '',
  ];
  const url = pgUrl('steward-test-injection');
  const pool = new pg.Pool({ connectionString: url, max: 1 });
  defer(() => pool.end());
  for (const name of attempts) {
    for (const names of [
      { schema: name, table: 'events' },
      { schema: 'public', table: name },
    ]) {
      const refused = { code: 'STEWARD_ERR_INVALID_IDENTIFIER' };
      assert.throws(
        () => pgEventQueue({ name: 'q', connectionString: url, handlers: { a() {} }, ...names }),
        refused,
      );
      assert.throws(() => queueNames(names.schema, names.table), refused);
      await assert.rejects(enqueue(pool, { type: 'a' }, names), refused);
    }
  }
  const schemasAfter = await adminQuery<{ nspname: string }>('SELECT nspname FROM pg_namespace');
  const created = schemasAfter
    .map((s) => s.nspname)
    .filter((n) => !schemasBefore.some((b) => b.nspname === n));
  assert.ok(!created.some((n) => /drop|cascade|événements|\s/i.test(n)), `created: ${created.join(', ')}`);
  const kept = await adminQuery(`SELECT 1 FROM "${canary}".keep`);
  assert.deepEqual(kept, [], 'the canary table is still there');
});
