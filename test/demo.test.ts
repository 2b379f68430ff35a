import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { deleteQueues, uniqueQueue } from './helpers/amqp.js';
import { get, getJson } from './helpers/http.js';
import { dropSchema, PG_BASE, randomSuffix } from './helpers/pg.js';
import { event, freePort, type Spawned, spawnFixture, until } from './helpers/process.js';

interface PingBody {
  worker: { id: number; pid: number; ageMs: number; requests: number };
  cluster: {
    workers: Array<{ id: number; pid: number; state: string }>;
    recycles: { total: number; byReason: Record<string, number> };
  } | null;
  services: Array<{ name: string; state: string; processed: number }>;
  host: { role: string; pid: number } | null;
  healthy: boolean;
}

const spawned: Spawned[] = [];
after(() => {
  for (const demo of spawned) demo.killAll();
});

/** Runs `npm start`'s entry on free ports and waits until both workers are ready. */
async function startDemo(env: Record<string, string> = {}) {
  const port = await freePort();
  const controlPort = await freePort();
  const demo = spawnFixture('../../examples/demo/main.js', {
    PORT: String(port),
    CONTROL_PORT: String(controlPort),
    STEWARD_LOG_LEVEL: 'info',
    ...env,
  });
  spawned.push(demo);
  await demo.waitForLog(event('demo:started'), 15_000, 'demo:started');
  await demo.waitForLogs(event('worker:ready'), 2, 15_000);
  const app = `http://127.0.0.1:${port}`;
  const control = `http://127.0.0.1:${controlPort}`;
  return { demo, app, control, ping: () => getJson<PingBody>(`${app}/ping`) };
}

/** Polls `/ping` until `accept` holds for its body, then returns that body. */
async function pingUntil(
  ping: () => Promise<PingBody>,
  accept: (body: PingBody) => boolean,
  description: string,
): Promise<PingBody> {
  let matched: PingBody | undefined;
  await until(
    async () => {
      const body = await ping();
      if (accept(body)) matched = body;
      return matched !== undefined;
    },
    15_000,
    description,
  );
  return matched!;
}

function counter(body: PingBody, service: string): number {
  const found = body.services.find((candidate) => candidate.name === service);
  assert.ok(found, `service ${service} in ${JSON.stringify(body.services)}`);
  return found.processed;
}

/** `total` GETs of `url`, `concurrency` at a time; the status codes in order of completion. */
async function burst(url: string, total: number, concurrency: number): Promise<number[]> {
  const codes: number[] = [];
  let next = 0;
  const lane = async () => {
    while (next++ < total) codes.push((await get(url)).status);
  };
  await Promise.all(Array.from({ length: concurrency }, lane));
  return codes;
}

test('npm start: page, ping and metrics; workers recycle under a burst while the daemon keeps counting', async () => {
  const { demo, app, control, ping } = await startDemo();

  const first = await pingUntil(
    ping,
    (body) => body.healthy && counter(body, 'demo-events') > 0 && body.cluster?.workers.length === 2,
    'a healthy ping with a counting daemon and two workers',
  );
  assert.equal(first.host?.role, 'sibling');
  const sibling = first.host!.pid;
  assert.ok(
    first.cluster!.workers.every((worker) => worker.pid !== sibling),
    'the daemon is in none of the workers',
  );

  const page = await get(`${app}/`);
  assert.equal(page.status, 200);
  assert.match(String(page.headers['content-type']), /^text\/html/);
  assert.match(page.body, /Answered by <strong>worker [12]<\/strong>/);
  assert.match(page.body, /Recycles so far: <strong>0<\/strong>\./);
  assert.match(page.body, /<td>demo-events<\/td><td>running<\/td>/);
  assert.match(page.body, new RegExp(`<strong>sibling</strong> process \\(pid ${sibling}\\)`));
  assert.doesNotMatch(page.body, /<(script|link|img)\b/, 'no external assets');

  const metrics = await get(`${control}/metrics`);
  assert.equal(metrics.status, 200);
  assert.match(metrics.body, /^steward_events_total\{[^}]*service="demo-events"[^}]*\} [1-9]/m);
  assert.match(metrics.body, /^steward_worker_requests_total\S* [1-9]/m);

  // Limits are drawn between 200 and 300 requests per worker: 900 requests retire both first workers.
  const codes = await burst(`${app}/ping`, 900, 4);
  assert.deepEqual(
    codes.filter((code) => code !== 200),
    [],
    'no request failed during recycles',
  );
  await demo.waitForLogs(event('worker:recycle:done', { reason: 'max-requests', code: 0 }), 2, 15_000);

  const later = await pingUntil(
    ping,
    (body) => body.worker.id > 2 && (body.cluster?.recycles.byReason['max-requests'] ?? 0) >= 2,
    'a replacement worker answering, two recycles counted',
  );
  // Each worker caches the control server's answers for a second: any page soon shows the recycles.
  await until(
    async () =>
      /Recycles so far: <strong>([2-9]|\d\d+)<\/strong> \(max-requests: \d+\)/.test(
        (await get(`${app}/`)).body,
      ),
    5_000,
    'the page counting the recycles',
  );
  assert.equal(later.host?.pid, sibling, 'the services sibling was never restarted');
  assert.ok(counter(later, 'demo-events') > counter(first, 'demo-events'), 'the daemon kept handling events');
  assert.equal(demo.logs.filter(event('services:fork')).length, 1, 'the services sibling was forked once');

  demo.child.kill('SIGTERM');
  assert.deepEqual(await demo.exited, { code: 0, signal: null });
  assert.ok(demo.logs.some(event('cluster:shutdown:done', { clean: true })));
});

test('with DATABASE_URL the daemon is a PostgreSQL event queue fed by a producer', async () => {
  const schema = `demo_${randomSuffix()}`;
  try {
    const { demo, ping } = await startDemo({ DATABASE_URL: PG_BASE, DEMO_PG_SCHEMA: schema });
    const first = await pingUntil(
      ping,
      (body) => body.healthy && counter(body, 'demo-queue') > 0,
      'the queue consumer handling events',
    );
    assert.deepEqual(first.services.map((service) => service.name).sort(), [
      'demo-queue',
      'demo-queue-producer',
    ]);
    await until(
      async () => counter(await ping(), 'demo-queue') > counter(first, 'demo-queue'),
      15_000,
      'the queue counter climbing',
    );
    demo.child.kill('SIGTERM');
    assert.deepEqual(await demo.exited, { code: 0, signal: null });
  } finally {
    await dropSchema(schema);
  }
});

test('with AMQP_URL the daemon is an AMQP 1.0 listener fed by a producer', async () => {
  const queue = uniqueQueue('demo');
  try {
    const { demo, ping } = await startDemo({
      AMQP_URL: 'amqp://guest:guest@127.0.0.1:5672',
      DEMO_AMQP_QUEUE: queue,
    });
    const first = await pingUntil(
      ping,
      (body) => body.healthy && counter(body, 'demo-amqp') > 0,
      'the AMQP listener handling messages',
    );
    assert.deepEqual(first.services.map((service) => service.name).sort(), [
      'demo-amqp',
      'demo-amqp-producer',
    ]);
    await pingUntil(
      ping,
      (body) => counter(body, 'demo-amqp') > counter(first, 'demo-amqp'),
      'the AMQP counter climbing',
    );
    demo.child.kill('SIGTERM');
    assert.deepEqual(await demo.exited, { code: 0, signal: null });
  } finally {
    await deleteQueues(queue);
  }
});
