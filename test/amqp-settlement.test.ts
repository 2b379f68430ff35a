import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { amqpListener } from '../lib/amqp.js';
import {
  BROKER,
  declareQueue,
  deleteQueues,
  drainQueue,
  messagesWithIds,
  publish,
  queueCounts,
  runService,
  uniqueQueue,
} from './helpers/amqp.js';
import { until } from './helpers/process.js';

const queues: string[] = [];
after(() => deleteQueues(...queues));

async function freshQueue(prefix: string, deadLetter = false): Promise<string> {
  const queue = uniqueQueue(prefix);
  queues.push(queue, ...(deadLetter ? [`${queue}.dead`] : []));
  await declareQueue(queue, deadLetter);
  return queue;
}

test('failing messages are redelivered, then rejected to the dead-letter queue after maxDeliveries', async (t) => {
  const queue = await freshQueue('dlx', true);
  const messages = messagesWithIds(20);
  // Every third message fails every time; the others must still flow past them.
  const poison = new Set(messages.filter((_, i) => i % 3 === 0).map((m) => String(m.message_id)));
  const attempts = new Map<string, number[]>();
  const handled = new Set<string>();
  const listener = amqpListener({
    name: 'amqp-dlx',
    ...BROKER,
    queue,
    maxDeliveries: 3,
    concurrency: 2,
    prefetch: 4,
    handler: (message, info) => {
      const id = String(message.message_id);
      attempts.set(id, [...(attempts.get(id) ?? []), info.attempt]);
      if (poison.has(id)) throw new Error(`cannot handle ${id}`);
      handled.add(id);
    },
  });
  const running = runService(listener);
  t.after(() => running.stop().catch(() => undefined));
  await publish(queue, messages);
  const dead = await drainQueue(`${queue}.dead`, (ids) => new Set(ids).size >= poison.size, 20_000);
  await until(() => handled.size === messages.length - poison.size, 10_000, 'every good message handled');
  await running.stop();

  assert.deepEqual(new Set(dead), poison);
  for (const id of poison) assert.deepEqual(attempts.get(id), [1, 2, 3], `attempts of ${id}`);
  for (const id of handled) assert.deepEqual(attempts.get(id), [1], `attempts of ${id}`);
  const status = running.record.status;
  assert.equal(status.deadLettered, poison.size);
  assert.equal(status.failed, poison.size * 2);
  assert.equal(status.processed, messages.length - poison.size);
  assert.deepEqual(await queueCounts(queue), { ready: 0, unacked: 0 });
  const deadLogs = running.logs.filter((line) => line.msg === 'amqp:message:dead-lettered');
  assert.equal(deadLogs.length, poison.size);
});

test('a wrong password crashes the service with STEWARD_ERR_AMQP_CONNECTION, without the password', async (t) => {
  const listener = amqpListener({
    name: 'amqp-auth',
    ...BROKER,
    password: 'not-the-password-x9',
    address: '/amq/queue/never-consumed',
    handler: () => undefined,
  });
  const running = runService(listener);
  t.after(() => running.stop().catch(() => undefined));
  await assert.rejects(running.done, (error: Error & { code?: string }) => {
    assert.equal(error.code, 'STEWARD_ERR_AMQP_CONNECTION');
    assert.match(error.message, /authentication failed/);
    assert.doesNotMatch(error.message, /not-the-password-x9/);
    return true;
  });
  assert.equal(running.record.status.connected, false);
  assert.ok(!JSON.stringify(running.logs).includes('not-the-password-x9'), 'password in logs');
});

test('a queue that does not exist is a crash naming the condition, not a reconnect loop', async (t) => {
  const missing = uniqueQueue('missing');
  const running = runService(
    amqpListener({ name: 'amqp-missing', ...BROKER, queue: missing, handler: () => 1 }),
  );
  t.after(() => running.stop().catch(() => undefined));
  await assert.rejects(running.done, (error: Error & { code?: string }) => {
    assert.equal(error.code, 'STEWARD_ERR_AMQP_CONNECTION');
    assert.match(error.message, /amqp:not-found/);
    assert.match(error.message, new RegExp(missing));
    return true;
  });
  assert.equal(running.logs.filter((l) => l.msg === 'amqp:connect:start').length, 1);
});

test('graceful stop lets running handlers finish, releases the rest, and loses nothing', async (t) => {
  const queue = await freshQueue('stop');
  const messages = messagesWithIds(40);
  const accepted = new Set<string>();
  const started = new Set<string>();
  let slowStarted = false;
  const listener = amqpListener({
    name: 'amqp-stop',
    ...BROKER,
    queue,
    concurrency: 3,
    prefetch: 10,
    stopTimeout: 3_000,
    handler: async (message, info) => {
      const id = String(message.message_id);
      started.add(id);
      // One handler outlives the stop deadline: its message must be released, not accepted.
      const ms = id === 'm-5' ? 10_000 : 150;
      if (id === 'm-5') slowStarted = true;
      await new Promise((resolve) => {
        const timer = setTimeout(resolve, ms);
        info.signal.addEventListener('abort', () => clearTimeout(timer), { once: true });
      });
      if (info.signal.aborted) throw new Error('aborted');
      accepted.add(id);
    },
  });
  const running = runService(listener);
  t.after(() => running.stop().catch(() => undefined));
  await publish(queue, messages);
  await until(() => slowStarted && accepted.size >= 6, 10_000, 'some messages handled');
  const stopping = running.stop();
  await until(() => running.logs.some((l) => l.msg === 'amqp:stop:start'), 2_000, 'stop started');
  await stopping;

  assert.ok(!accepted.has('m-5'));
  assert.equal(running.record.status.processed, accepted.size);
  const settledLog = running.logs.find((l) => l.msg === 'amqp:stop:settled');
  assert.equal(settledLog?.abandoned, 1, 'the slow handler is abandoned and its message released');
  const rest = await drainQueue(queue, (ids) => ids.length >= messages.length - accepted.size);
  // Nothing lost, nothing handled twice: the drained messages are exactly the ones not accepted.
  assert.deepEqual(new Set(rest).size, rest.length);
  for (const id of rest) assert.ok(!accepted.has(id), `${id} was accepted and delivered again`);
  assert.equal(accepted.size + rest.length, messages.length);
  assert.ok(rest.includes('m-5'));
});

test('dedupWindow accepts a repeated message_id without running the handler again; lag comes from creation_time', async (t) => {
  const queue = await freshQueue('dedup');
  const calls: string[] = [];
  const listener = amqpListener({
    name: 'amqp-dedup',
    ...BROKER,
    queue,
    dedupWindow: 100,
    handler: (message) => void calls.push(String(message.message_id)),
  });
  const running = runService(listener);
  t.after(() => running.stop().catch(() => undefined));
  const created = new Date(Date.now() - 5_000);
  await publish(queue, [
    { message_id: 'event-1', body: 'a', creation_time: created },
    { message_id: 'event-2', body: 'b', creation_time: created },
    { message_id: 'event-1', body: 'a again', creation_time: created },
  ]);
  await until(() => running.record.status.duplicates === 1 && calls.length === 2, 10_000, 'duplicate seen');
  await running.stop();
  assert.deepEqual(calls, ['event-1', 'event-2']);
  assert.equal(running.record.status.queueDepth, 0, 'an emptied queue shows no backlog');
  assert.equal(running.record.status.processed, 2);
  assert.ok((running.record.status.lagMs ?? 0) >= 5_000, `lag ${running.record.status.lagMs}`);
  assert.deepEqual(await queueCounts(queue), { ready: 0, unacked: 0 });
});
