import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import pg from 'pg';
import { renderStatus, type StatusDocument } from '../lib/cli/status-table.js';
import { enqueue } from '../lib/pg.js';
import { declareQueue, deleteQueues, publish } from './helpers/amqp.js';
import {
  untilAllRan as allDone,
  createRunsSchema,
  runsByKey as runs,
  untilQueueTables,
} from './helpers/dispatch-runs.js';
import { addressFromReady, get, getJson } from './helpers/http.js';
import { adminQuery, dropSchema, PG_BASE, randomSuffix } from './helpers/pg.js';
import { event, freePort, type Spawned, spawnFixture, until } from './helpers/process.js';

const spawned: Spawned[] = [];
const schemas: string[] = [];
const queues: string[] = [];
after(async () => {
  for (const fixture of spawned) fixture.killAll();
  for (const schema of schemas) await dropSchema(schema);
  await deleteQueues(...queues);
});

interface App extends Spawned {
  address: string;
  control: string;
  schema: string;
}

/** Starts dispatch-app.js with its own schema (and AMQP queue) and waits for its workers. */
async function startApp(
  env: Record<string, string> = {},
  options: Record<string, unknown> = {},
  workers = 2,
): Promise<App> {
  const schema = await createRunsSchema(schemas);
  const controlPort = await freePort();
  const fixture = spawnFixture('dispatch-app.js', {
    DISPATCH_SCHEMA: schema,
    PORT: String(await freePort()),
    FIXTURE_OPTIONS: JSON.stringify({ workers, control: { port: controlPort }, ...options }),
    ...env,
  });
  spawned.push(fixture);
  const ready = await fixture.waitForLogs(event('worker:ready'), workers, 30_000);
  await untilQueueTables(schema);
  return {
    ...fixture,
    address: addressFromReady(ready[0]!),
    control: `http://127.0.0.1:${controlPort}`,
    schema,
  };
}

async function enqueueWork(schema: string, keys: string[], instruction?: string, type = 'work') {
  const client = new pg.Client({ connectionString: PG_BASE });
  await client.connect();
  try {
    await enqueue(
      client,
      keys.map((key) => ({ type, key, payload: { do: instruction } })),
      { schema },
    );
  } finally {
    await client.end();
  }
}

const keysOf = (prefix: string, count: number) => Array.from({ length: count }, (_, i) => `${prefix}-${i}`);

test('pg queue events run in the workers, spread over both, and leave the queue once handled', async () => {
  const app = await startApp();
  const keys = keysOf('k', 200);
  await enqueueWork(app.schema, keys, 'slow:5');
  await allDone(app.schema, keys, 60_000);
  const seen = await runs(app.schema);
  const pids = new Set([...seen.values()].flatMap((entry) => [...entry.pids]));
  const workerPids = new Set(app.logs.filter(event('worker:booting')).map((line) => line.workerPid));
  assert.equal(pids.size, 2, 'both workers handled events');
  for (const pid of pids) assert.ok(workerPids.has(pid), `pid ${pid} is a worker`);
  await until(
    async () => (await adminQuery(`SELECT 1 FROM ${app.schema}.events`)).length === 0,
    20_000,
    'queue empty',
  );
  const status = await getJson<{ valve: { workers: { handled: number }[]; dispatchedNames: string[] } }>(
    `${app.control}/status`,
  );
  assert.deepEqual(status.valve.dispatchedNames, ['work']);
  const handled = status.valve.workers.reduce((sum, worker) => sum + worker.handled, 0);
  assert.ok(handled >= 200, `/status counts ${handled} dispatched events`);
  const text = renderStatus((await getJson(`${app.control}/status`)) as unknown as StatusDocument);
  assert.match(text, /Valve (open|closed): \d+\/\d+ events in the workers/);
  assert.match(text, /WORKER\s+VALVE\s+EVENTS\s+HANDLED/);
  const metrics = await get(`${app.control}/metrics`);
  assert.match(metrics.body, /steward_valve_limit\{worker="\d+"/);
  assert.match(metrics.body, /steward_dispatch_events_total\{worker="\d+",outcome="processed"/);
});

test('kill -9 of a worker mid-handler: the pg event runs again in another worker, nothing lost', async () => {
  const app = await startApp();
  await enqueueWork(app.schema, ['victim'], 'hang-first');
  const started = await app.waitForLog(event('fixture:handler:started', { key: 'victim' }), 30_000);
  const keys = keysOf('after', 50);
  await enqueueWork(app.schema, keys, 'slow:5');
  process.kill(started.pid as number, 'SIGKILL');
  await allDone(app.schema, [...keys, 'victim'], 60_000);
  const victim = (await runs(app.schema)).get('victim')!;
  assert.equal(victim.runs, 2, 'the event ran again once: one duplicate, counted');
  assert.equal(new Set(victim.pids).size, 2, 'in another worker');
  await app.waitForLog(event('dispatch:worker-lost'), 10_000);
});

test('a relayed pg event past its handlerTimeout fails and runs again; the hung run is abandoned', async () => {
  const app = await startApp({ DISPATCH_OPTIONS: JSON.stringify({ handlerTimeout: 500 }) });
  await enqueueWork(app.schema, ['stuck'], 'hang-first');
  const timedOut = await app.waitForLog(event('queue:handler:timeout'), 30_000);
  assert.equal(timedOut.handlerTimeout, 500);
  await allDone(app.schema, ['stuck'], 30_000);
  assert.equal((await runs(app.schema)).get('stuck')!.runs, 2, 'the timed-out event ran once more');
});

test('AMQP messages run in the workers; kill -9 mid-handler redelivers, nothing lost', async () => {
  const queue = `steward-test-dispatch-${randomSuffix()}`;
  queues.push(queue);
  await declareQueue(queue);
  const app = await startApp({ DISPATCH_QUEUE: queue });
  await app.waitForLog(event('amqp:link:attached'), 30_000);
  await publish(queue, [{ message_id: 'victim', body: 'hang-first' }]);
  const started = await app.waitForLog(event('fixture:handler:started', { key: 'victim' }), 30_000);
  const ids = keysOf('m', 100);
  await publish(
    queue,
    ids.map((id) => ({ message_id: id, body: 'ok' })),
  );
  process.kill(started.pid as number, 'SIGKILL');
  await allDone(app.schema, [...ids, 'victim'], 60_000);
  const seen = await runs(app.schema);
  assert.equal(seen.get('victim')!.runs, 2, 'redelivered once after the kill');
  const duplicates = [...seen.values()].reduce((sum, entry) => sum + entry.runs - 1, 0);
  assert.ok(duplicates >= 1, `duplicates counted: ${duplicates}`);
});

test('rolling restarts during dispatch lose nothing; draining workers finish their events', async () => {
  const app = await startApp();
  const keys = keysOf('r', 300);
  await enqueueWork(app.schema, keys, 'slow:20');
  for (let round = 1; round <= 3; round++) {
    await app.waitForLogs(event('fixture:handler:started'), 40 * round, 30_000);
    process.kill(app.pid, 'SIGHUP');
    await app.waitForLogs((line) => line.msg === 'worker:dead', 2 * round, 30_000);
  }
  await allDone(app.schema, keys, 90_000);
  // A draining worker finished what it had: no event of a retired worker was lost or cut.
  assert.equal(app.logs.filter(event('dispatch:worker-lost')).length, 0);
  const exits = app.logs.filter((line) => line.msg === 'worker:dead');
  assert.ok(
    exits.every((line) => line.code === 0),
    JSON.stringify(exits),
  );
});

test('the valve closes under a blocked worker loop and opens again', async () => {
  const app = await startApp();
  const stop = new AbortController();
  // Both workers block their loops in turn (round-robin), as long CPU-bound requests would.
  const load = (async () => {
    while (!stop.signal.aborted)
      await Promise.all([1, 2].map(() => get(`http://${app.address}/block?ms=300`).catch(() => undefined)));
  })();
  const closed = await app.waitForLog(event('valve:closed'), 60_000);
  assert.equal(closed.limit, 1, 'at the floor');
  // Overload as the valve saw it: a long loop delay, or a busy loop while serving HTTP.
  assert.ok(
    (closed.loopDelayMs as number) > 100 || (closed.utilization as number) > 0.5,
    `loop delay ${closed.loopDelayMs} ms, utilization ${closed.utilization}`,
  );
  stop.abort();
  await load;
  const opened = await app.waitForLog(
    (line) => line.msg === 'valve:opened' && line.worker === closed.worker,
    30_000,
  );
  assert.ok((opened.limit as number) > 1);
});

test('a dispatched name no worker handles: a coded error at start, and its events stay queued', async () => {
  const app = await startApp({ DISPATCH_NAMES: 'work,nobody', DISPATCH_NAMES_HANDLED: 'work' });
  const line = await app.waitForLog(event('dispatch:no-handler'), 30_000);
  assert.equal(line.code, 'STEWARD_ERR_NO_HANDLER');
  assert.equal(line.name, 'nobody');
  await enqueueWork(app.schema, ['orphan'], undefined, 'nobody');
  await app.waitForLog(event('queue:event:failed', { key: 'orphan' }), 30_000);
  const rows = await adminQuery(`SELECT attempts FROM ${app.schema}.events WHERE key = 'orphan'`);
  assert.equal(rows.length, 1, 'still in the queue, not dropped');
});

test('kill -9 of the services sibling mid-dispatch: the source keeps the event, which runs again', async () => {
  const app = await startApp({ DISPATCH_OPTIONS: JSON.stringify({ lease: 2000 }) });
  await enqueueWork(app.schema, ['orphaned-reply'], 'slow:1500');
  await app.waitForLog(event('fixture:handler:started', { key: 'orphaned-reply' }), 30_000);
  const fork = app.logs.find(event('services:fork'));
  assert.ok(fork, 'the sibling was forked');
  const siblingPid = fork.siblingPid as number;
  process.kill(siblingPid, 'SIGKILL');
  // The handler's outcome had nobody to settle it; the lease expires and the new sibling hands it out again.
  await until(
    async () => (await adminQuery(`SELECT 1 FROM ${app.schema}.events`)).length === 0,
    60_000,
    'the event completed by the new sibling',
  );
  const entry = (await runs(app.schema)).get('orphaned-reply')!;
  assert.ok(entry.runs >= 2, `ran ${entry.runs} times: at least once more after the sibling died`);
  assert.ok(entry.done);
});

test('20 worker recycles and 5 kill -9 during dispatch from AMQP and pg: 0 events lost, duplicates counted', async () => {
  const queue = `steward-test-dispatch-chaos-${randomSuffix()}`;
  queues.push(queue);
  await declareQueue(queue);
  const app = await startApp({ DISPATCH_QUEUE: queue });
  await app.waitForLog(event('amqp:link:attached'), 30_000);
  // Producers keep both sources busy while the faults happen: every recycle and kill meets events in flight.
  const sent = { pg: [] as string[], amqp: [] as string[] };
  const producing = new AbortController();
  const producer = (async () => {
    for (let batch = 0; !producing.signal.aborted; batch++) {
      const pgKeys = keysOf(`chaos-pg-${batch}`, 20);
      const amqpIds = keysOf(`chaos-amqp-${batch}`, 20);
      await enqueueWork(app.schema, pgKeys, 'slow:20');
      await publish(
        queue,
        amqpIds.map((id) => ({ message_id: id, body: 'slow:20' })),
      );
      sent.pg.push(...pgKeys);
      sent.amqp.push(...amqpIds);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  })();
  const started = () => app.logs.filter(event('fixture:handler:started')).length;
  let kills = 0;
  for (let round = 1; round <= 10; round++) {
    // Each rolling restart recycles both workers (2 recycles), each meeting dispatched events.
    const before = started();
    await until(async () => started() >= before + 20, 30_000, `events running before restart ${round}`);
    process.kill(app.pid, 'SIGHUP');
    const done = await app.waitForLogs(event('cluster:rolling-restart:done'), round, 60_000);
    assert.equal(done[round - 1]!.recycled, 2, JSON.stringify(done[round - 1]));
    if (round % 2 === 0) {
      // kill -9 of a worker with a handler running right now.
      const mark = started();
      const running = await app.waitForLogs(event('fixture:handler:started'), mark + 1, 30_000);
      const victim = running[running.length - 1]!.pid as number;
      process.kill(victim, 'SIGKILL');
      kills++;
      await app.waitForLogs(event('worker:ready'), 2 + 2 * round + kills, 60_000);
    }
  }
  producing.abort();
  await producer;
  const keys = [...sent.pg, ...sent.amqp];
  // The backlog the producers left (up to about 9,000 events on a slow machine) drains behind the valve
  // after the faults; beside another test file on a slow 2-core machine that once took over 120 s.
  await allDone(app.schema, keys, 240_000);
  const seen = await runs(app.schema);
  const lost = keys.filter((key) => seen.get(key)?.done !== true);
  assert.deepEqual(lost, [], 'no event lost');
  const duplicates = (prefix: string) =>
    [...seen.entries()]
      .filter(([key]) => key.startsWith(prefix))
      .reduce((sum, [, entry]) => sum + entry.runs - 1, 0);
  const workerLost = app.logs.filter(event('dispatch:worker-lost')).length;
  console.log(
    `chaos: ${sent.pg.length} pg and ${sent.amqp.length} AMQP events, 20 recycles, ${kills} kill -9: ` +
      `0 lost, duplicates pg ${duplicates('chaos-pg')}, AMQP ${duplicates('chaos-amqp')}; ` +
      `${workerLost} dispatched events lost with their worker`,
  );
  assert.equal(kills, 5);
  assert.ok(workerLost >= 1, 'the kills met dispatched events in flight');
  // Duplicates come only from the kills: a recycled worker finishes its events before it exits.
  assert.ok(
    duplicates('chaos-') <= workerLost,
    `${duplicates('chaos-')} duplicates, ${workerLost} worker-lost`,
  );
  const exits = app.logs.filter((line) => line.msg === 'worker:dead');
  assert.equal(exits.filter((line) => line.code === 0).length, 20, 'each recycled worker left cleanly');
});
