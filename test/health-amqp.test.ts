import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createRequire } from 'node:module';
import { after, test } from 'node:test';
import { promisify } from 'node:util';
import { resolveAmqpOptions } from '../lib/listeners/amqp/options.js';
import {
  BROKER,
  declareQueue,
  deleteQueues,
  drainQueue,
  publish,
  queueCounts,
  uniqueQueue,
} from './helpers/amqp.js';
import { Forwarder } from './helpers/forwarder.js';
import { handledIds, readSignals, startHealthApp, untilHealthy, untilUnhealthy } from './helpers/health.js';
import { event, type Spawned, until } from './helpers/process.js';

const rhea = createRequire(import.meta.url)('rhea') as typeof import('rhea');
const run = promisify(execFile);
const SERVICE = 'health-amqp';
const spawned: Spawned[] = [];
const queues: string[] = [];
after(async () => {
  for (const fixture of spawned) fixture.killAll();
  await deleteQueues(...queues.flatMap((queue) => [queue, `${queue}.dead`]));
});

async function freshQueue(prefix: string): Promise<string> {
  const queue = uniqueQueue(prefix);
  queues.push(queue);
  await declareQueue(queue, true);
  return queue;
}

/**
 * Puts a message whose AMQP 1.0 body is the bytes 00 53 77 ff (an amqp-value section holding the
 * unknown type code 0xff) on a queue: published over AMQP 0-9-1 with the type `amqp-1.0`, RabbitMQ hands
 * the bytes to AMQP 1.0 consumers as they are.
 */
async function publishUndecodable(queue: string): Promise<void> {
  await run(
    'rabbitmqctl',
    [
      '-q',
      'eval',
      `rabbit_basic:publish(rabbit_misc:r(<<"/">>, exchange, <<>>), <<"${queue}">>, [{type, <<"amqp-1.0">>}, {delivery_mode, 2}], <<0, 16#53, 16#77, 16#ff>>).`,
    ],
    { timeout: 20_000 },
  );
}

test('the poison message really ends a plain rhea connection (what the listener must survive)', async () => {
  const queue = await freshQueue('poison-plain');
  await publishUndecodable(queue);
  const connection = rhea.create_container().connect({ ...BROKER, reconnect: false });
  const failure = await new Promise<string>((resolve) => {
    connection.on('disconnected', (context) => resolve(String(context.error ?? 'disconnected')));
    connection.on('error', (error: unknown) => resolve(String(error)));
    connection.open_receiver({ source: { address: `/amq/queue/${queue}` }, autoaccept: false });
  });
  connection.close();
  assert.match(failure, /Unrecognised typecode: ff|ECONNRESET|disconnected/);
});

test('an undecodable message is dead-lettered alone and the message behind it is handled within 15 s', async () => {
  const queue = await freshQueue('poison');
  await publishUndecodable(queue);
  await publish(queue, [{ message_id: 'behind', body: 'ok' }]);
  const app = await startHealthApp(spawned, {
    HEALTH_LISTENER: 'amqp',
    HEALTH_PORT: String(BROKER.port),
    HEALTH_QUEUE: queue,
  });
  const { fixture } = app;
  const started = Date.now();
  await until(() => handledIds(app).includes('behind'), 15_000, 'the message behind the poison handled');
  const handledAfterMs = Date.now() - started;
  const undecodable = await fixture.waitForLog(event('amqp:undecodable'), 5_000, 'amqp:undecodable');
  assert.equal(typeof undecodable.deliveryId, 'number', 'the log line names the delivery');
  assert.match(JSON.stringify(undecodable.err), /Unrecognised typecode: ff/);
  assert.equal(fixture.logs.filter(event('amqp:connection:lost')).length, 0, 'the connection lived on');
  // Dead-lettered, not lost and not redelivered: it is in the dead-letter queue, the queue is empty.
  // (Counted by the broker: reading it back with rhea would fail the same way.)
  await until(async () => (await queueCounts(`${queue}.dead`)).ready === 1, 10_000, 'one dead-lettered');
  assert.deepEqual(await queueCounts(queue), { ready: 0, unacked: 0 });
  const signals = await untilHealthy(app, SERVICE, 10_000, 'a healthy listener after the poison');
  assert.equal(signals.service?.deadLettered, 1);
  assert.equal(signals.service?.processed, 1);
  console.log(`# message behind the poison handled ${handledAfterMs} ms after the cluster was up`);
});

test('hung handlers: health reports "stuck" within 10 s of every slot timing out, the rest proceeds', async () => {
  const queue = await freshQueue('stuck');
  const app = await startHealthApp(spawned, {
    HEALTH_LISTENER: 'amqp',
    HEALTH_PORT: String(BROKER.port),
    HEALTH_QUEUE: queue,
    HEALTH_OPTIONS: JSON.stringify({
      concurrency: 2,
      handlerTimeout: 2_000,
      maxDeliveries: 2,
      redeliveryDelay: { initialDelay: 500 },
    }),
  });
  await untilHealthy(app, SERVICE, 15_000, 'a healthy, idle listener');
  await publish(queue, [
    { message_id: 'hang-1', body: 'hang' },
    { message_id: 'hang-2', body: 'hang' },
    ...Array.from({ length: 5 }, (_, i) => ({ message_id: `ok-${i}`, body: 'ok' })),
  ]);
  await app.fixture.waitForLogs(event('amqp:handler:timeout'), 2, 15_000);
  const sick = await untilUnhealthy(app, SERVICE, 10_000, 'stuck handlers', /stuck: /);
  assert.ok(
    sick.reasons.some((reason) => reason.includes(SERVICE) && reason.includes('stuck')),
    sick.reasons.join('; '),
  );
  assert.match(String(sick.service?.problem), /did not settle within handlerTimeout \(2000 ms\)/);
  assert.ok((sick.service?.handlerTimeouts ?? 0) >= 2);
  await until(
    () => ['ok-0', 'ok-1', 'ok-2', 'ok-3', 'ok-4'].every((id) => handledIds(app).includes(id)),
    20_000,
    'the messages behind the hung ones handled',
  );
  // Cleared by the next handler that settles, then (after the hung ones' last timeouts and their dead
  // lettering) by 5 s without any handler running.
  await untilHealthy(app, SERVICE, 20_000, 'recovery once no handler hangs any more');
  // The hung messages were dead-lettered after maxDeliveries timeouts, not lost.
  const dead = await drainQueue(`${queue}.dead`, (ids) => ids.length >= 2, 20_000);
  assert.deepEqual([...dead].sort(), ['hang-1', 'hang-2']);
  const metrics = await readSignals(app, SERVICE);
  assert.equal(metrics.up, 1);
  // Logged by the service host: a warning when the problem is raised, an info line when it clears.
  const raised = app.fixture.logs.filter(event('service:problem', { service: SERVICE }));
  assert.ok(
    raised.length >= 1 && raised.every((line) => String(line.problem).startsWith('stuck: 2 handlers')),
  );
  const cleared = app.fixture.logs.filter(event('service:problem:cleared', { service: SERVICE }));
  assert.equal(cleared.length, raised.length, 'each warning has its all-clear');
});

test('a failure on a transient cause is redelivered after a delay and handled, not dead-lettered', async () => {
  const queue = await freshQueue('transient');
  const app = await startHealthApp(spawned, {
    HEALTH_LISTENER: 'amqp',
    HEALTH_PORT: String(BROKER.port),
    HEALTH_QUEUE: queue,
  });
  await publish(queue, [
    { message_id: 'blip', body: 'transient:3000' },
    { message_id: 'after', body: 'ok' },
  ]);
  await until(() => handledIds(app).includes('blip'), 30_000, 'the message handled once its cause passed');
  const attempts = app.fixture.logs.filter(
    (line) => (line.msg === 'fixture:failed' || line.msg === 'fixture:handled') && line.id === 'blip',
  );
  const failed = app.fixture.logs.filter(event('amqp:message:failed'));
  assert.ok(failed.length >= 2 && failed.length < 5, `${failed.length} failed deliveries`);
  for (let i = 1; i < attempts.length; i++) {
    const gap = (attempts[i]!.at as number) - (attempts[i - 1]!.at as number);
    // 1 s doubling, jitter 0.2: at least 800 ms between two deliveries.
    assert.ok(gap >= 800, `delivery ${i + 1} came ${gap} ms after the one before`);
  }
  // The slot was free during the delay: the message behind was handled before the retried one.
  assert.ok(handledIds(app).indexOf('after') < handledIds(app).indexOf('blip'));
  assert.equal(app.fixture.logs.filter(event('amqp:message:dead-lettered')).length, 0);
  assert.deepEqual(await queueCounts(`${queue}.dead`), { ready: 0, unacked: 0 });
});

test('broker down at start and later: health says so within 10 s, consuming resumes within 2 s of its return', async (t) => {
  const queue = await freshQueue('down');
  const broker = new Forwarder(BROKER.port);
  await broker.reserve();
  t.after(() => broker.down());
  const app = await startHealthApp(spawned, {
    HEALTH_LISTENER: 'amqp',
    HEALTH_PORT: String(broker.port),
    HEALTH_QUEUE: queue,
  });
  const down = Date.now();
  // (The host adds its own reason for a service still starting; the listener names the cause.)
  const sick = await untilUnhealthy(
    app,
    SERVICE,
    10_000,
    'a broker unreachable at start',
    /cannot reach the AMQP broker 127\.0\.0\.1:\d+ for 5 s or more: .*ECONNREFUSED/,
  );
  assert.ok(
    sick.reasons.some((reason) => reason.includes(SERVICE)),
    sick.reasons.join('; '),
  );
  const detectedAtStartMs = Date.now() - down;
  await publish(queue, [{ message_id: 'first', body: 'ok' }]);
  // Long enough for an unbounded backoff to have grown far beyond the 1 s ceiling.
  await new Promise((resolve) => setTimeout(resolve, 12_000 - (Date.now() - down)));
  await broker.up();
  const back = Date.now();
  await until(() => handledIds(app).includes('first'), 10_000, 'the message handled after the return');
  const resumedAtStartMs = Date.now() - back;
  assert.ok(resumedAtStartMs < 4_000, `handled ${resumedAtStartMs} ms after the broker returned`);
  await untilHealthy(app, SERVICE, 10_000, 'a healthy listener after the return');

  await broker.down();
  const lost = Date.now();
  await untilUnhealthy(app, SERVICE, 10_000, 'a broker lost while running', /cannot reach the AMQP broker/);
  const detectedWhileRunningMs = Date.now() - lost;
  await publish(queue, [{ message_id: 'second', body: 'ok' }]);
  await broker.up();
  const returned = Date.now();
  await until(
    () => handledIds(app).includes('second'),
    10_000,
    'the message handled after the second return',
  );
  const resumedMs = Date.now() - returned;
  await untilHealthy(app, SERVICE, 10_000, 'healthy again');
  console.log(
    `# broker down at start: unhealthy after ${detectedAtStartMs} ms, consuming ${resumedAtStartMs} ms after its return; ` +
      `lost while running: unhealthy after ${detectedWhileRunningMs} ms, consuming ${resumedMs} ms after its return`,
  );
});

test('redeliveryDelay and reconnect are validated, with their defaults', () => {
  const base = { name: 'a', queue: 'q', handler() {} };
  const defaults = resolveAmqpOptions(base);
  assert.deepEqual(defaults.redeliveryDelay, { initialDelay: 1_000, maxDelay: 30_000, jitter: 0.2 });
  assert.deepEqual(defaults.reconnect, { initialDelay: 100, maxDelay: 1_000, jitter: 0.2 });
  assert.equal(defaults.handlerTimeout, 30_000);
  assert.deepEqual(resolveAmqpOptions({ ...base, redeliveryDelay: { initialDelay: 0 } }).redeliveryDelay, {
    initialDelay: 0,
    maxDelay: 30_000,
    jitter: 0.2,
  });
  // A larger first delay alone raises the ceiling instead of contradicting the default one.
  assert.equal(resolveAmqpOptions({ ...base, reconnect: { initialDelay: 2_000 } }).reconnect.maxDelay, 2_000);
  for (const [redeliveryDelay, code, message] of [
    [{ initialDelay: -1 }, 'STEWARD_ERR_INVALID_OPTION', /`redeliveryDelay.initialDelay`/],
    [{ initialDelay: 5_000, maxDelay: 1_000 }, 'STEWARD_ERR_INVALID_OPTION', /`redeliveryDelay.maxDelay`/],
    [{ jitter: 2 }, 'STEWARD_ERR_INVALID_OPTION', /`redeliveryDelay.jitter`/],
    [{ intialDelay: 5 }, 'STEWARD_ERR_UNKNOWN_OPTION', /redeliveryDelay.intialDelay/],
    [5, 'STEWARD_ERR_INVALID_OPTION', /`redeliveryDelay`/],
  ] as const) {
    assert.throws(
      () => resolveAmqpOptions({ ...base, redeliveryDelay }),
      (error: Error & { code?: string }) => {
        assert.equal(error.code, code, error.message);
        assert.match(error.message, message);
        return true;
      },
    );
  }
});
