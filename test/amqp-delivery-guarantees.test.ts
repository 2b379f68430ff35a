import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { amqpListener } from '../lib/amqp.js';
import {
  BROKER,
  declareQueue,
  deleteQueues,
  messagesWithIds,
  publish,
  queueCounts,
  runService,
  TcpProxy,
  uniqueQueue,
} from './helpers/amqp.js';
import { event, spawnFixture, until } from './helpers/process.js';

const queues: string[] = [];
after(() => deleteQueues(...queues));

async function freshQueue(prefix: string): Promise<string> {
  const queue = uniqueQueue(prefix);
  queues.push(queue);
  await declareQueue(queue);
  return queue;
}

const attachedCount = (logs: { msg?: string }[]) => logs.filter((l) => l.msg === 'amqp:link:attached').length;

test('network drops mid-stream lose nothing, and deliveries of a dead link are never counted as handled', async (t) => {
  const queue = await freshQueue('drop');
  const proxy = new TcpProxy();
  const port = await proxy.listen();
  t.after(() => proxy.close());
  const messages = messagesWithIds(400);
  const handled = new Set<string>();
  let successes = 0;
  const listener = amqpListener({
    name: 'amqp-drop',
    ...BROKER,
    port,
    queue,
    concurrency: 4,
    prefetch: 20,
    reconnect: { initialDelay: 50, maxDelay: 400 },
    handler: async (message) => {
      await new Promise((resolve) => setTimeout(resolve, 2));
      handled.add(String(message.message_id));
      successes++;
    },
  });
  const running = runService(listener);
  t.after(() => running.stop().catch(() => undefined));
  await publish(queue, messages);

  for (const threshold of [60, 200]) {
    await until(() => handled.size >= threshold, 15_000, `${threshold} messages handled`);
    const attached = attachedCount(running.logs);
    proxy.cut();
    await until(() => attachedCount(running.logs) > attached, 10_000, 'link attached again');
  }
  await until(() => handled.size === messages.length, 20_000, 'every message handled');
  await until(
    async () => {
      const counts = await queueCounts(queue);
      return counts.ready === 0 && counts.unacked === 0;
    },
    10_000,
    'queue empty',
  );
  await running.stop();

  assert.equal(proxy.cuts, 2);
  assert.ok(running.logs.filter((l) => l.msg === 'amqp:connection:lost').length >= 2);
  const skipped = running.logs.filter((l) => l.msg === 'amqp:settle:skipped' && l.failed === false).length;
  // Handled on a link that died before the accept: counted only when the redelivery is accepted.
  assert.equal(running.record.status.processed, successes - skipped);
  assert.ok(running.record.status.processed >= messages.length);
  assert.equal(running.record.status.connected, false);
});

test('a peer that goes silent without closing is dropped after the idle timeout, and nothing is lost', async (t) => {
  const queue = await freshQueue('silent');
  const proxy = new TcpProxy();
  const port = await proxy.listen();
  t.after(() => proxy.close());
  const messages = messagesWithIds(100);
  const handled = new Set<string>();
  const listener = amqpListener({
    name: 'amqp-silent',
    ...BROKER,
    port,
    queue,
    prefetch: 10,
    idleTimeout: 500,
    reconnect: { initialDelay: 50, maxDelay: 200 },
    handler: async (message) => {
      await new Promise((resolve) => setTimeout(resolve, 5));
      handled.add(String(message.message_id));
    },
  });
  const running = runService(listener);
  t.after(() => running.stop().catch(() => undefined));
  await publish(queue, messages);
  await until(() => handled.size >= 20, 10_000, '20 messages handled');
  proxy.blackhole();
  const silentAt = Date.now();
  await until(() => attachedCount(running.logs) === 2, 10_000, 'link attached again after the idle timeout');
  const detectedAfter = Date.now() - silentAt;
  await until(() => handled.size === messages.length, 15_000, 'every message handled');
  await until(
    async () => {
      const counts = await queueCounts(queue);
      return counts.ready === 0 && counts.unacked === 0;
    },
    10_000,
    'queue empty',
  );
  await running.stop();
  // rhea drops a connection that stayed silent for twice the idle timeout it announced.
  assert.ok(detectedAfter >= 900, `dropped after ${detectedAfter} ms`);
  assert.equal(proxy.cuts, 0, 'the proxy never closed a connection itself');
  assert.ok(running.logs.some((l) => l.msg === 'amqp:connection:lost'));
});

test('kill -9 of the process holding the listener mid-handler loses nothing', async (t) => {
  const queue = await freshQueue('kill');
  const messages = messagesWithIds(60);
  await publish(queue, messages);
  const fixture = spawnFixture('amqp-consumer.js', { AMQP_QUEUE: queue, HANDLER_MS: '150' });
  t.after(() => fixture.killAll());
  await fixture.waitForLogs(event('fixture:handle:done'), 10, 15_000);
  // Kill while a handler is running: its message was received but must not have been accepted.
  await fixture.waitForLog(() => {
    const done = new Set(fixture.logs.filter(event('fixture:handle:done')).map((l) => l.id));
    return fixture.logs.some((l) => l.msg === 'fixture:handle:start' && !done.has(l.id));
  });
  fixture.killAll();
  await fixture.exited;

  const done = new Set(fixture.logs.filter(event('fixture:handle:done')).map((l) => String(l.id)));
  const interrupted = fixture.logs
    .filter((l) => l.msg === 'fixture:handle:start' && !done.has(String(l.id)))
    .map((l) => String(l.id));
  assert.ok(interrupted.length > 0, 'a handler was running at the kill');

  const drained = new Set<string>();
  const next = runService(
    amqpListener({
      name: 'amqp-after-kill',
      ...BROKER,
      queue,
      prefetch: 50,
      handler: (message) => void drained.add(String(message.message_id)),
    }),
  );
  t.after(() => next.stop().catch(() => undefined));
  const all = messages.map((m) => String(m.message_id));
  await until(() => all.every((id) => done.has(id) || drained.has(id)), 15_000, 'every id accounted for');
  await until(
    async () => {
      const counts = await queueCounts(queue);
      return counts.ready === 0 && counts.unacked === 0;
    },
    10_000,
    'queue empty',
  );
  await next.stop();
  for (const id of interrupted) assert.ok(drained.has(id), `${id} was interrupted and must be redelivered`);
});
