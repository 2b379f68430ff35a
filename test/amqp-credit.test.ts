import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
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
  uniqueQueue,
} from './helpers/amqp.js';
import { until } from './helpers/process.js';

const queues: string[] = [];
after(() => deleteQueues(...queues));

const require = createRequire(import.meta.url);

/**
 * Counts at the client, in rhea itself, the deliveries received and not yet settled by a disposition
 * frame: every delivery a receiver dispatches, minus the delivery ids covered by the dispositions the
 * client writes. A frame is built before it is written, so the count is never below the truth. The same
 * rhea module instance is loaded by the listener (one node_modules), so its receiver is counted.
 */
function countClientUnsettled(): { readonly max: number; readonly received: number; restore(): void } {
  const frames = require('rhea/lib/frames.js') as Record<
    string,
    (fields: Record<string, unknown>) => unknown
  >;
  const { Receiver } = require('rhea/lib/link.js') as {
    Receiver: { prototype: { dispatch(name: string, context: unknown): unknown } };
  };
  let received = 0;
  let settled = 0;
  let max = 0;
  const dispatch = Receiver.prototype.dispatch;
  const disposition = frames.disposition!;
  Receiver.prototype.dispatch = function (name, context) {
    if (name === 'message') max = Math.max(max, ++received - settled);
    return dispatch.call(this, name, context);
  };
  frames.disposition = (fields) => {
    // role true: sent by a receiver. `last` is left out when the range holds one delivery.
    if (fields.role === true) settled += Number(fields.last ?? fields.first) - Number(fields.first) + 1;
    return disposition(fields);
  };
  return {
    get max() {
      return max;
    },
    get received() {
      return received;
    },
    restore() {
      Receiver.prototype.dispatch = dispatch;
      frames.disposition = disposition;
    },
  };
}

for (const { handlerMs, concurrency } of [
  // Credit comes back as fast as the broker sends: grants happen while earlier messages still travel,
  // the case where a top-up before the link ran dry lets RabbitMQ 3.x send more than granted.
  { handlerMs: 0, concurrency: 10 },
  // Slow handlers: the buffer fills and credit comes back a few deliveries at a time.
  { handlerMs: 2, concurrency: 5 },
]) {
  test(`with ${handlerMs} ms handlers (concurrency ${concurrency}) the client never holds more than \`prefetch\` unsettled deliveries`, async (t) => {
    const queue = uniqueQueue('credit-bound');
    queues.push(queue);
    await declareQueue(queue);
    await publish(queue, messagesWithIds(3_000));
    const prefetch = 50;
    let handled = 0;
    const counter = countClientUnsettled();
    t.after(() => counter.restore());
    const listener = amqpListener({
      name: 'amqp-credit-bound',
      ...BROKER,
      queue,
      prefetch,
      concurrency,
      handler: async () => {
        await new Promise((resolve) => setTimeout(resolve, handlerMs));
        handled++;
      },
    });
    const service = runService(listener);
    t.after(() => service.stop().catch(() => undefined));
    await until(() => handled >= 1_500, 30_000, 'handling 1500 messages');
    await service.stop();
    counter.restore();

    assert.ok(
      counter.max <= prefetch,
      `the client held ${counter.max} unsettled deliveries, prefetch ${prefetch}`,
    );
    assert.ok(
      counter.max > concurrency,
      `deliveries were buffered beyond the running handlers (max ${counter.max})`,
    );
    assert.ok(counter.received >= 1_500, `received ${counter.received}`);
  });
}

test('under a backlog at most `prefetch` deliveries are unsettled and at most `concurrency` handlers run', async (t) => {
  const queue = uniqueQueue('credit');
  queues.push(queue);
  await declareQueue(queue);
  const backlog = 20_000;
  await publish(queue, messagesWithIds(backlog));
  const prefetch = 40;
  const concurrency = 4;
  let running = 0;
  let maxRunning = 0;
  let handled = 0;
  const listener = amqpListener({
    name: 'amqp-credit',
    ...BROKER,
    queue,
    prefetch,
    concurrency,
    handler: async () => {
      maxRunning = Math.max(maxRunning, ++running);
      // Slow enough that the backlog outlasts the sampling (rabbitmqctl takes about a second per call).
      await new Promise((resolve) => setTimeout(resolve, 10));
      running--;
      handled++;
    },
  });
  const service = runService(listener);
  t.after(() => service.stop().catch(() => undefined));
  await until(() => handled >= 200, 10_000, 'consuming');

  // The broker's own count of delivered-but-unsettled messages is the listener's buffer, seen from outside.
  const samples: { ready: number; unacked: number }[] = [];
  const heapBefore = process.memoryUsage().heapUsed;
  while (samples.length < 8) samples.push(await queueCounts(queue));
  const heapGrowth = process.memoryUsage().heapUsed - heapBefore;
  // The broker's `available` on its flow replies becomes the service's queue depth.
  const depth = service.record.status.queueDepth;
  await service.stop();
  assert.ok(depth !== null && depth > backlog / 2 && depth <= backlog, `queue depth ${depth}`);

  const maxUnacked = Math.max(...samples.map((s) => s.unacked));
  assert.ok(maxUnacked <= prefetch, `unacked ${maxUnacked} > prefetch ${prefetch}`);
  assert.ok(maxUnacked > 0, 'the listener was consuming while sampled');
  assert.ok(maxRunning <= concurrency, `ran ${maxRunning} handlers at once`);
  assert.ok(maxRunning === concurrency, 'the concurrency was used');
  // The backlog stays on the broker instead of flowing into the process.
  assert.ok(samples.at(-1)!.ready > backlog / 2, `ready ${samples.at(-1)!.ready}`);
  assert.ok(heapGrowth < 32 * 1024 * 1024, `heap grew ${heapGrowth} bytes while consuming`);
  const afterStop = await queueCounts(queue);
  assert.equal(afterStop.unacked, 0);
  assert.equal(afterStop.ready, backlog - service.record.status.processed);
});
