import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import pg from 'pg';
import { enqueue } from '../lib/pg.js';
import { untilAllRan as allDone, createRunsSchema, runsByKey as runs } from './helpers/dispatch-runs.js';
import { adminQuery, dropSchema, PG_BASE, randomSuffix } from './helpers/pg.js';
import { event, freePort, type Spawned, spawnFixture, until } from './helpers/process.js';

// Events dispatched to the HTTP workers from the sources test/dispatch.test.ts does not cover: a
// LISTEN/NOTIFY listener, a user service calling `toWorkers(name)` itself, and workers forked by throng.

const spawned: Spawned[] = [];
const schemas: string[] = [];
after(async () => {
  for (const fixture of spawned) fixture.killAll();
  for (const schema of schemas) await dropSchema(schema);
});

interface App extends Spawned {
  schema: string;
}

async function startApp(env: Record<string, string>, names: string): Promise<App> {
  const schema = await createRunsSchema(schemas);
  const fixture = spawnFixture('dispatch-app.js', {
    DISPATCH_SCHEMA: schema,
    DISPATCH_NAMES_HANDLED: names,
    PORT: String(await freePort()),
    FIXTURE_OPTIONS: JSON.stringify({ workers: 2 }),
    ...env,
  });
  spawned.push(fixture);
  await fixture.waitForLogs(event('worker:ready'), 2, 30_000);
  return { ...fixture, schema };
}

const workerPids = (app: Spawned) =>
  new Set(app.logs.filter(event('worker:booting')).map((line) => line.workerPid as number));
const keysOf = (prefix: string, count: number) => Array.from({ length: count }, (_, i) => `${prefix}-${i}`);

test('LISTEN/NOTIFY notifications run in the workers, never in the sibling', async () => {
  const channel = `steward_dispatch_${randomSuffix()}`;
  const app = await startApp(
    { DISPATCH_SERVICES: 'dispatch-sources-services.js', DISPATCH_CHANNEL: channel },
    'notify-work',
  );
  // LISTEN is in place once a probe notification reaches a worker (a NOTIFY before it is not delivered).
  await until(
    async () => {
      await adminQuery('SELECT pg_notify($1, $2)', [channel, JSON.stringify({ key: 'probe' })]);
      return (await runs(app.schema)).get('probe')?.done === true;
    },
    30_000,
    'the listener is listening',
  );
  const keys = keysOf('n', 30);
  for (const key of keys)
    await adminQuery('SELECT pg_notify($1, $2)', [channel, JSON.stringify({ key, do: 'slow:2' })]);
  await allDone(app.schema, keys, 30_000);
  const seen = await runs(app.schema);
  const workers = workerPids(app);
  for (const key of keys)
    for (const pid of seen.get(key)!.pids) assert.ok(workers.has(pid), `${key} ran in worker ${pid}`);
  // One listener runs its notifications one at a time: each ran once.
  assert.ok(
    keys.every((key) => seen.get(key)!.pids.length === 1),
    'each notification ran once',
  );
  const pids = new Set(keys.flatMap((key) => seen.get(key)!.pids));
  assert.equal(pids.size, 2, 'spread over both workers');
});

test('a user service hands events to the workers with toWorkers(name) and gets each outcome', async () => {
  const keys = keysOf('f', 40);
  const app = await startApp(
    {
      DISPATCH_SERVICES: 'dispatch-sources-services.js',
      DISPATCH_CHANNEL: `steward_dispatch_${randomSuffix()}`,
      FEED_KEYS: [...keys.map((key) => `${key}=slow:2`), 'f-broken=throw'].join(','),
    },
    'feed-work',
  );
  await allDone(app.schema, keys, 30_000);
  const settled = await app.waitForLogs(event('fixture:feed:settled'), keys.length + 1, 30_000);
  const outcomes = new Map(settled.map((line) => [line.key as string, line]));
  for (const key of keys) assert.equal(outcomes.get(key)?.outcome, 'processed', key);
  // The worker's handler error comes back to the service that dispatched the event.
  const broken = outcomes.get('f-broken')!;
  assert.equal(broken.outcome, 'failed');
  assert.match(broken.error as string, /handler of f-broken failed/);
  const pids = new Set([...(await runs(app.schema)).values()].flatMap((entry) => entry.pids));
  const workers = workerPids(app);
  assert.ok(
    [...pids].every((pid) => workers.has(pid)),
    'every event ran in a worker',
  );
  assert.equal(pids.size, 2, 'spread over both workers');
});

test('ctx.handle under throng (forThrong): queued events run in the workers throng forked', async () => {
  const app = await startApp({ DISPATCH_FORKER: 'throng' }, 'work');
  await until(
    async () =>
      (await adminQuery<{ t: string | null }>('SELECT to_regclass($1) AS t', [`${app.schema}.events`]))[0]!
        .t !== null,
    30_000,
    'queue tables created',
  );
  const keys = keysOf('t', 100);
  const client = new pg.Client({ connectionString: PG_BASE });
  await client.connect();
  try {
    await enqueue(
      client,
      keys.map((key) => ({ type: 'work', key, payload: { do: 'slow:5' } })),
      { schema: app.schema },
    );
  } finally {
    await client.end();
  }
  await allDone(app.schema, keys, 60_000);
  const pids = new Set([...(await runs(app.schema)).values()].flatMap((entry) => entry.pids));
  const workers = workerPids(app);
  assert.equal(pids.size, 2, 'both throng workers handled events');
  for (const pid of pids) assert.ok(workers.has(pid), `pid ${pid} is a worker throng forked`);
  await until(
    async () => (await adminQuery(`SELECT 1 FROM ${app.schema}.events`)).length === 0,
    20_000,
    'queue empty: every event completed from its worker outcome',
  );
});
