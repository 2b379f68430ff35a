import assert from 'node:assert/strict';
import { test } from 'node:test';
import pg from 'pg';
import pino from 'pino';
import {
  enqueue,
  type NotifyHandlerEvent,
  pgEventQueue,
  pgNotifyListener,
  type QueueEvent,
} from '../lib/pg.js';
import {
  adminQuery,
  countBackends,
  dropSchema,
  pgUrl,
  randomSuffix,
  runService,
  terminateBackends,
  testSchema,
} from './helpers/pg.js';
import { until } from './helpers/process.js';

test('notifications reach the handler in order, JSON parsed; bad JSON is counted as failed', async (t) => {
  const app = `steward-test-notify-${randomSuffix()}`;
  const channel = `steward_test.${randomSuffix()}`;
  const received: NotifyHandlerEvent[] = [];
  const listener = runService(
    pgNotifyListener({
      name: 'n',
      connectionString: pgUrl(app),
      channels: [channel],
      json: true,
      handler: (n) => void received.push(n),
    }),
  );
  t.after(() => listener.stop());
  await until(() => listener.record.status.connected === true, 10_000, 'listening');
  for (const payload of ['{"n":1}', 'not json', '{"n":2}'])
    await adminQuery('SELECT pg_notify($1, $2)', [channel, payload]);
  await until(() => received.length === 2 && listener.record.status.failed === 1, 5_000, 'notifications');
  assert.deepEqual(
    received.map((n) => [n.channel, n.payload]),
    [
      [channel, { n: 1 }],
      [channel, { n: 2 }],
    ],
  );
  assert.equal(listener.record.status.processed, 2);
  assert.equal(await countBackends(app), 1, 'one dedicated connection');
});

test('pg_terminate_backend: the listener and the queue reconnect and nothing enqueued is lost', async (t) => {
  const app = `steward-test-terminate-${randomSuffix()}`;
  const schema = testSchema();
  const channel = `steward_test.${randomSuffix()}`;
  const producer = new pg.Pool({ connectionString: pgUrl(`${app}-producer`), max: 1 });
  t.after(async () => {
    await producer.end();
    await dropSchema(schema);
  });
  const reconnect = { initialDelay: 50, maxDelay: 500, jitter: 0.5 };
  const notified: unknown[] = [];
  let reconnects = 0;
  const listener = runService(
    pgNotifyListener({
      name: 'n',
      connectionString: pgUrl(app),
      channels: channel,
      json: true,
      reconnect,
      checkInterval: 500,
      handler: (n) => void notified.push(n.payload),
      onReconnect: () => void reconnects++,
    }),
  );
  t.after(() => listener.stop());
  const handled = new Set<number>();
  const queue = runService(
    pgEventQueue({
      name: 'q',
      connectionString: pgUrl(app),
      schema,
      reconnect,
      checkInterval: 500,
      pollInterval: 1_000,
      handlers: { work: (e: QueueEvent) => void handled.add(e.payload as number) },
    }),
    pino({ level: 'silent' }),
  );
  t.after(() => queue.stop());
  await until(
    () => listener.record.status.connected && queue.record.status.state === 'running',
    10_000,
    'up',
  );
  await enqueue(
    producer,
    [0, 1, 2, 3, 4].map((n) => ({ type: 'work', payload: n })),
    { schema },
  );
  await until(() => handled.size === 5, 5_000, 'first events');

  const killed = await terminateBackends(app);
  t.diagnostic(`terminated ${killed} backends of ${app}`);
  assert.ok(killed >= 2, 'the LISTEN connections and the pool were cut');
  // Enqueued while the consumers are reconnecting: their NOTIFY may be lost, the events must not be.
  await enqueue(
    producer,
    [5, 6, 7, 8, 9].map((n) => ({ type: 'work', payload: n })),
    { schema },
  );
  await until(() => handled.size === 10, 10_000, 'events enqueued during the outage');
  await until(() => reconnects === 1 && listener.record.status.connected === true, 10_000, 'listener back');
  await adminQuery('SELECT pg_notify($1, $2)', [channel, '{"after":true}']);
  await until(() => notified.length === 1, 5_000, 'notification after reconnect');
  assert.deepEqual(notified, [{ after: true }]);
  assert.deepEqual(
    [...handled].sort((a, b) => a - b),
    [...Array(10).keys()],
  );
  // Completions are written in batches after the handlers resolve (again, after a failed write): wait for them.
  const remaining = async () =>
    (await adminQuery<{ n: number }>(`SELECT count(*)::int AS n FROM "${schema}"."events"`))[0]!.n;
  await until(async () => (await remaining()) === 0, 10_000, 'all completions written after the reconnect');
});

test('listener options and channel names are validated', () => {
  const base = { name: 'n', connectionString: pgUrl('x'), channels: 'c', handler() {} };
  assert.throws(() => pgNotifyListener({ ...base, channels: 'a"; DROP TABLE x; --' }), {
    code: 'STEWARD_ERR_INVALID_IDENTIFIER',
    message: /channels\[0\]/,
  });
  assert.throws(() => pgNotifyListener({ ...base, channels: [] }), { code: 'STEWARD_ERR_INVALID_OPTION' });
  assert.throws(() => pgNotifyListener({ ...base, checkInterval: 5 }), {
    code: 'STEWARD_ERR_INVALID_OPTION',
    message: /`checkInterval`.*>= 100.*`5`/,
  });
  assert.throws(() => pgNotifyListener({ ...base, reconnect: { initialDelay: 100, maxDelay: 10 } }), {
    code: 'STEWARD_ERR_INVALID_OPTION',
    message: /reconnect\.maxDelay/,
  });
  assert.throws(() => pgNotifyListener({ ...base, jsn: true } as never), {
    code: 'STEWARD_ERR_UNKNOWN_OPTION',
    message: /Did you mean `json`/,
  });
  const withSecret = { ...base, connectionString: 42 } as never;
  assert.throws(
    () => pgNotifyListener(withSecret),
    (error: Error) => !error.message.includes('42'),
  );
});

test('stopping while still connecting settles at once (listener and queue)', {
  timeout: 20_000,
}, async (t) => {
  const app = `steward-test-quickstop-${randomSuffix()}`;
  const schema = testSchema();
  t.after(() => dropSchema(schema));
  for (const wait of [0, 5, 20, 60]) {
    const listener = runService(
      pgNotifyListener({ name: 'n', connectionString: pgUrl(app), channels: 'c', handler() {} }),
    );
    const queue = runService(
      pgEventQueue({ name: 'q', connectionString: pgUrl(app), schema, handlers: { a() {} } }),
    );
    await new Promise((resolve) => setTimeout(resolve, wait));
    const started = Date.now();
    await Promise.all([listener.stop(), queue.stop()]);
    assert.ok(Date.now() - started < 3_000, `stop after ${wait} ms took ${Date.now() - started} ms`);
  }
  await until(async () => (await countBackends(app)) === 0, 5_000, 'every connection closed');
});
