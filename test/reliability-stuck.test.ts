import assert from 'node:assert/strict';
import { test } from 'node:test';
import pg from 'pg';
import { amqpListener } from '../lib/amqp.js';
import { resolveAmqpOptions } from '../lib/listeners/amqp/options.js';
import { resolveEventQueueOptions } from '../lib/listeners/pg/event-queue.js';
import { enqueue, pgEventQueue, type QueueEvent } from '../lib/pg.js';
import {
  BROKER,
  declareQueue,
  deleteQueues,
  drainQueue,
  publish,
  runService,
  uniqueQueue,
} from './helpers/amqp.js';
import { adminQuery, dropSchema, pgUrl, runService as runPgService, testSchema } from './helpers/pg.js';
import { until } from './helpers/process.js';
import { deferrer, explained } from './helpers/teardown.js';

/** A handler that never settles and ignores its signal: the worst case a listener must survive. */
const never = () => new Promise<never>(() => {});

test('AMQP: a handler that never returns fails its delivery at handlerTimeout; the slot and credit come back', async (t) => {
  const defer = deferrer(t);
  const queue = uniqueQueue('stuck');
  await declareQueue(queue, true);
  defer(() => deleteQueues(queue, `${queue}.dead`));
  const handled: string[] = [];
  const signals: AbortSignal[] = [];
  const service = runService(
    amqpListener({
      name: 'stuck-amqp',
      ...BROKER,
      queue,
      // One slot and one credit: without the timeout the stuck message would block the queue forever.
      concurrency: 1,
      prefetch: 1,
      maxDeliveries: 2,
      handlerTimeout: 300,
      handler: (message, info) => {
        if (message.message_id === 'stuck') {
          signals.push(info.signal);
          return never();
        }
        handled.push(String(message.message_id));
      },
    }),
  );
  defer(() => service.stop());
  await publish(queue, [
    { message_id: 'stuck', body: 'x' },
    { message_id: 'a', body: 'x' },
    { message_id: 'b', body: 'x' },
  ]);
  await until(() => handled.length === 2, 10_000, 'the messages behind the stuck one');
  assert.deepEqual(handled.sort(), ['a', 'b']);
  const dead = await explained(
    service,
    drainQueue(`${queue}.dead`, (ids) => ids.length >= 1, 10_000),
  );
  assert.deepEqual(dead, ['stuck'], 'dead-lettered after maxDeliveries timed-out runs');
  const timeouts = service.logs.filter((line) => line.msg === 'amqp:handler:timeout');
  assert.equal(timeouts.length, 2);
  assert.equal(timeouts[0]!.messageId, 'stuck');
  assert.equal(timeouts[0]!.handlerTimeout, 300);
  assert.ok(signals.length === 2 && signals.every((signal) => signal.aborted), 'each run was told to stop');
  const deadLine = service.logs.find((line) => line.msg === 'amqp:message:dead-lettered');
  assert.equal((deadLine?.err as { code?: string } | undefined)?.code, 'STEWARD_ERR_HANDLER_TIMEOUT');
  const status = service.record.status;
  assert.equal(status.processed, 2);
  assert.equal(status.failed, 1);
  assert.equal(status.deadLettered, 1);
  assert.equal(status.state, 'running');
});

/** A fresh schema and a pool for one pg test, both gone when it ends. */
function queueSchema(defer: (step: () => unknown) => void, application: string) {
  const schema = testSchema();
  const url = pgUrl(application);
  const pool = new pg.Pool({ connectionString: url, max: 1 });
  defer(async () => {
    await pool.end();
    await dropSchema(schema);
  });
  return { schema, url, pool };
}

test('pg queue: a handler that never returns fails at handlerTimeout, frees its key, and is dead-lettered', async (t) => {
  const defer = deferrer(t);
  const { schema, url, pool } = queueSchema(defer, 'steward-test-stuck');
  const handled: Array<{ payload: string; at: number }> = [];
  let hangs = 0;
  const consumer = runPgService(
    pgEventQueue({
      name: 'stuck-queue',
      connectionString: url,
      schema,
      // One slot: without the timeout the stuck handler would hold it, and its key, forever.
      concurrency: 1,
      maxAttempts: 2,
      handlerTimeout: 300,
      retry: { initialDelay: 50, maxDelay: 50 },
      pollInterval: 200,
      handlers: {
        keyed: (event: QueueEvent) => {
          if (event.payload === 'hang') {
            hangs++;
            return never();
          }
          handled.push({ payload: String(event.payload), at: Date.now() });
        },
      },
    }),
  );
  defer(() => consumer.stop());
  await until(() => consumer.record.status.state === 'running', 10_000, 'consumer running');
  await enqueue(
    pool,
    [
      { type: 'keyed', key: 'k', payload: 'hang' },
      // Same type and key: runs only once the stuck event is done with the key (here: dead-lettered).
      { type: 'keyed', key: 'k', payload: 'after the stuck one' },
      { type: 'keyed', key: 'j', payload: 'other key' },
    ],
    { schema },
  );
  await until(() => handled.length === 2, 10_000, 'the events behind the stuck one');
  const [dead] = await deadRows(schema);
  assert.ok(dead, 'the stuck event was dead-lettered');
  assert.equal(dead.attempts, 2);
  assert.match(dead.last_error, /handlerTimeout \(300 ms\)/);
  assert.equal(hangs, 2, 'one timed-out run per attempt');
  const after = handled.find((event) => event.payload === 'after the stuck one');
  assert.ok(after && after.at >= dead.failed_at.getTime() - 50, 'the key was freed by the dead letter');
  assert.ok(handled.some((event) => event.payload === 'other key'));
  assert.equal(consumer.record.status.state, 'running');
  assert.equal(consumer.record.status.deadLettered, 1);
  assert.equal(consumer.record.status.failed, 1);
});

test("pg queue: a handler that declares a signal gets its own, aborted at its deadline; one that declares none gets the service's", async (t) => {
  const defer = deferrer(t);
  const { schema, url, pool } = queueSchema(defer, 'steward-test-signals');
  const own: AbortSignal[] = [];
  const shared: AbortSignal[] = [];
  const consumer = runPgService(
    pgEventQueue({
      name: 'signals',
      connectionString: url,
      schema,
      maxAttempts: 1,
      handlerTimeout: 200,
      handlers: {
        declared: (_event: QueueEvent, signal: AbortSignal) => {
          own.push(signal);
          return never();
        },
        // Declares no parameter for it (a rest parameter does not count): the signal comes all the same.
        undeclared: (...args: unknown[]) => {
          shared.push(args[1] as AbortSignal);
          return never();
        },
      },
    }),
  );
  defer(() => consumer.stop());
  await until(() => consumer.record.status.state === 'running', 10_000, 'consumer running');
  await enqueue(
    pool,
    [
      { type: 'declared', payload: 1 },
      { type: 'undeclared', payload: 2 },
    ],
    { schema },
  );
  await until(() => consumer.record.status.deadLettered === 2, 10_000, 'both handlers timed out');
  assert.equal(own.length, 1);
  assert.ok(own[0]!.aborted, "a declared signal aborts at the handler's deadline");
  assert.equal((own[0]!.reason as { code?: string }).code, 'STEWARD_ERR_HANDLER_TIMEOUT');
  assert.equal(shared.length, 1);
  assert.ok(shared[0] instanceof AbortSignal, 'an undeclared signal is still an AbortSignal');
  assert.ok(!shared[0]!.aborted, "the service's signal does not abort at one handler's deadline");
  await consumer.stop();
  assert.ok(shared[0]!.aborted, 'it aborts when the service stops');
});

async function deadRows(schema: string) {
  return adminQuery<{ attempts: number; last_error: string; failed_at: Date }>(
    `SELECT attempts, last_error, failed_at FROM "${schema}".events_dead`,
  );
}

test('handlerTimeout is validated in both listeners', () => {
  const amqp = { name: 'a', queue: 'q', handler() {} };
  assert.equal(resolveAmqpOptions(amqp).handlerTimeout, 30_000, '30 s by default');
  assert.equal(resolveAmqpOptions({ ...amqp, handlerTimeout: 0 }).handlerTimeout, 0, '0: no limit');
  assert.equal(resolveAmqpOptions({ ...amqp, handlerTimeout: '2s' }).handlerTimeout, 2_000);
  const queue = { name: 'q', connectionString: pgUrl('x'), handlers: { a() {} } };
  assert.equal(resolveEventQueueOptions(queue).handlerTimeout, 30_000);
  assert.equal(resolveEventQueueOptions({ ...queue, handlerTimeout: '1m' }).handlerTimeout, 60_000);
  for (const bad of [-1, 1.5, 'soon', null]) {
    assert.throws(() => resolveAmqpOptions({ ...amqp, handlerTimeout: bad }), {
      code: 'STEWARD_ERR_INVALID_OPTION',
      message: /`handlerTimeout`.*>= 0 ms/,
    });
    assert.throws(() => resolveEventQueueOptions({ ...queue, handlerTimeout: bad }), {
      code: 'STEWARD_ERR_INVALID_OPTION',
      message: /`handlerTimeout`.*>= 0 ms/,
    });
  }
});
