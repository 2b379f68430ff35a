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
  uniqueQueue,
} from './helpers/amqp.js';
import { until } from './helpers/process.js';

const queues: string[] = [];
after(() => deleteQueues(...queues));

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
      await new Promise((resolve) => setTimeout(resolve, 1));
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
