import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import pg from 'pg';
import pino from 'pino';
import { enqueue, migrate, pgEventQueue, pgNotifyListener, queueNames } from '../lib/pg.js';
import { loadServices } from '../lib/services/load-services.js';
import { Forwarder } from './helpers/forwarder.js';
import { handledIds, readSignals, startHealthApp, untilHealthy, untilUnhealthy } from './helpers/health.js';
import { get } from './helpers/http.js';
import { dropSchema, pgUrl, randomSuffix, runService, testSchema } from './helpers/pg.js';
import { event, type Spawned, until } from './helpers/process.js';
import { parseExposition, total } from './helpers/prometheus.js';

const SERVICE = 'health-queue';
const PG_PORT = 5432;
const spawned: Spawned[] = [];
after(() => {
  for (const fixture of spawned) fixture.killAll();
});

/** A migrated queue schema and a pool to enqueue into it, both removed when the test ends. */
async function queueSchema(t: { after(fn: () => unknown): void }) {
  const schema = testSchema();
  const pool = new pg.Pool({ connectionString: pgUrl(`steward-test-health-${randomSuffix()}`), max: 2 });
  t.after(async () => {
    await pool.end();
    await dropSchema(schema);
  });
  await migrate(pool, queueNames(schema, 'events'));
  const add = (events: { key: string; action: string }[]) =>
    enqueue(
      pool,
      events.map(({ key, action }) => ({ type: 'work', key, payload: { do: action } })),
      { schema },
    );
  return { schema, pool, add };
}

test('with default options, 30 hung handlers do not keep 50 other events from running within 2 minutes', async (t) => {
  const { schema, add } = await queueSchema(t);
  await add(Array.from({ length: 30 }, (_, i) => ({ key: `hang-${i}`, action: 'hang' })));
  await add(Array.from({ length: 50 }, (_, i) => ({ key: `ok-${i}`, action: 'ok' })));
  const app = await startHealthApp(spawned, {
    HEALTH_LISTENER: 'pg',
    HEALTH_PORT: String(PG_PORT),
    HEALTH_SCHEMA: schema,
  });
  const started = Date.now();
  // Every slot (concurrency 10) holds a hung handler until the 30 s default handlerTimeout frees it.
  await app.fixture.waitForLogs(event('queue:handler:timeout'), 10, 60_000);
  const timedOutAt = Date.now();
  const sick = await untilUnhealthy(app, SERVICE, 10_000, 'stuck handlers', /stuck: /);
  const detectedMs = Date.now() - timedOutAt;
  assert.match(
    String(sick.service?.problem),
    /^stuck: 10 handlers in a row did not settle within handlerTimeout \(30000 ms\)$/,
  );
  assert.ok(
    sick.reasons.some((reason) => reason.includes(`${SERVICE}: stuck`)),
    sick.reasons.join('; '),
  );
  const okIds = Array.from({ length: 50 }, (_, i) => `ok-${i}`);
  await until(
    () => okIds.every((id) => handledIds(app).includes(id)),
    120_000 - (Date.now() - started),
    'the 50 other events handled within 2 minutes',
    250,
  );
  const allHandledMs = Date.now() - started;
  const signals = await readSignals(app, SERVICE);
  assert.ok((signals.service?.handlerTimeouts ?? 0) >= 10, `${signals.service?.handlerTimeouts} timeouts`);
  const metrics = parseExposition((await get(`${app.control}/metrics`)).body);
  assert.ok(total(metrics, 'steward_handler_timeouts_total', { service: SERVICE }) >= 10);
  console.log(
    `# 30 hung + 50 ok: stuck reported ${detectedMs} ms after the 10th timeout; all 50 handled after ${allHandledMs} ms`,
  );
});

test('database down at start and later: health says so within 10 s, claiming resumes within 2 s of its return', async (t) => {
  const { schema, add } = await queueSchema(t);
  const database = new Forwarder(PG_PORT);
  await database.reserve();
  t.after(() => database.down());
  await add([{ key: 'first', action: 'ok' }]);
  const app = await startHealthApp(spawned, {
    HEALTH_LISTENER: 'pg',
    HEALTH_PORT: String(database.port),
    HEALTH_SCHEMA: schema,
  });
  const down = Date.now();
  // (The host adds its own reason for a service still starting; the listener names the cause.)
  const sick = await untilUnhealthy(
    app,
    SERVICE,
    10_000,
    'a database unreachable at start',
    new RegExp(
      `cannot reach PostgreSQL 127\\.0\\.0\\.1:${database.port}/test for 5 s or more: .*ECONNREFUSED`,
    ),
  );
  const detectedAtStartMs = Date.now() - down;
  assert.ok(
    sick.reasons.some((reason) => reason.includes(SERVICE)),
    sick.reasons.join('; '),
  );
  // Waiting for the database, not crashed into the restart backoff of its host.
  assert.equal(sick.service?.state, 'starting');
  assert.equal(sick.service?.restarts, 0);
  await new Promise((resolve) => setTimeout(resolve, Math.max(0, 12_000 - (Date.now() - down))));
  assert.equal((await readSignals(app, SERVICE)).service?.state, 'starting', 'still waiting, not failed');
  await database.up();
  const back = Date.now();
  await until(() => handledIds(app).includes('first'), 10_000, 'the event handled after the return');
  const resumedAtStartMs = Date.now() - back;
  assert.ok(resumedAtStartMs < 4_000, `handled ${resumedAtStartMs} ms after the database returned`);
  await untilHealthy(app, SERVICE, 10_000, 'a healthy queue after the return');

  await database.down();
  const lost = Date.now();
  await untilUnhealthy(app, SERVICE, 10_000, 'a database lost while running', /cannot reach PostgreSQL/);
  const detectedWhileRunningMs = Date.now() - lost;
  await new Promise((resolve) => setTimeout(resolve, 3_000));
  await add([{ key: 'second', action: 'ok' }]);
  await database.up();
  const returned = Date.now();
  await until(() => handledIds(app).includes('second'), 10_000, 'the event handled after the second return');
  const resumedMs = Date.now() - returned;
  await untilHealthy(app, SERVICE, 10_000, 'healthy again');
  console.log(
    `# database down at start: unhealthy after ${detectedAtStartMs} ms, handled ${resumedAtStartMs} ms after its return; ` +
      `lost while running: unhealthy after ${detectedWhileRunningMs} ms, handled ${resumedMs} ms after its return`,
  );
});

const handlers = { work: () => undefined };

test('connection strings are checked where they are taken, never shown', () => {
  const base = { name: 'q', handlers };
  const unset = { ...base, connectionString: process.env.STEWARD_TEST_SURELY_UNSET_VARIABLE as string };
  assert.throws(
    () => pgEventQueue(unset),
    (error: Error & { code?: string }) => {
      assert.equal(error.code, 'STEWARD_ERR_INVALID_OPTION');
      assert.match(error.message, /^`connectionString` is not set: expected a PostgreSQL connection string/);
      assert.doesNotMatch(error.message, /'undefined'/);
      return true;
    },
  );
  for (const [value, received] of [
    ['postgres:/u:hunter2@db.internal/app', /got a malformed `postgres:` URL \(no `\/\/host`\)/],
    ['mysql://u:hunter2@db/app', /got a URL with the scheme `mysql:`/],
    ['', /got an empty string/],
    ['hunter2', /got a string that is neither a URL nor key=value pairs/],
  ] as const) {
    for (const create of [
      () => pgEventQueue({ ...base, connectionString: value }),
      () => pgNotifyListener({ name: 'n', channels: 'c', handler: () => undefined, connectionString: value }),
    ]) {
      assert.throws(create, (error: Error & { code?: string }) => {
        assert.equal(error.code, 'STEWARD_ERR_INVALID_OPTION');
        assert.match(error.message, /^Expected `connectionString` to be a PostgreSQL connection string/);
        assert.match(error.message, received);
        assert.doesNotMatch(error.message, /hunter2/);
        return true;
      });
    }
  }
  for (const accepted of [
    'postgres://u:pw@127.0.0.1:5432/test',
    'postgresql://127.0.0.1/test?sslmode=disable',
    'postgres:///test?host=/var/run/postgresql',
    'host=127.0.0.1 port=5432 dbname=test',
  ])
    assert.equal(pgEventQueue({ ...base, connectionString: accepted }).name, 'q', accepted);
});

test('a wrong database or host is STEWARD_ERR_PG_CONNECTION naming host:port/database, the cause and a hint', async () => {
  for (const [connectionString, target, hint] of [
    [
      'postgres://postgres:hunter2@127.0.0.1:5432/no_such_database_for_steward',
      '127.0.0.1:5432/no_such_database_for_steward',
      /3D000: .*database "no_such_database_for_steward" does not exist \(the database does not exist: check its name/,
    ],
    [
      'postgres://postgres:hunter2@steward-no-such-host.invalid:5432/test',
      'steward-no-such-host.invalid:5432/test',
      /(ENOTFOUND|EAI_AGAIN).*\(the host name (does not resolve|could not be resolved)/,
    ],
  ] as const) {
    const service = runService(pgEventQueue({ name: 'wrong', connectionString, handlers }));
    const error = (await service.done.then(
      () => assert.fail('the service must crash'),
      (thrown: unknown) => thrown,
    )) as Error & { code?: string };
    await service.stop().catch(() => undefined);
    assert.equal(error.code, 'STEWARD_ERR_PG_CONNECTION');
    assert.ok(error.message.startsWith(`PostgreSQL ${target}: `), error.message);
    assert.match(error.message, hint);
    assert.doesNotMatch(error.message, /hunter2/);
  }
});

test('a refused port waits for the database and says why in the service problem', async (t) => {
  const nobody = new Forwarder(PG_PORT);
  await nobody.reserve();
  const service = runService(
    pgEventQueue({
      name: 'refused',
      connectionString: `postgres://postgres:hunter2@127.0.0.1:${nobody.port}/test`,
      handlers,
    }),
  );
  t.after(() => service.stop());
  await until(() => service.record.status.problem !== null, 10_000, 'a problem reported');
  const problem = String(service.record.status.problem);
  assert.match(
    problem,
    new RegExp(
      `^cannot reach PostgreSQL 127\\.0\\.0\\.1:${nobody.port}/test for 5 s or more: .*ECONNREFUSED.*is PostgreSQL running`,
    ),
  );
  assert.doesNotMatch(problem, /hunter2/);
  assert.equal(service.record.status.state, 'starting');
});

test('a factory validation error is logged with its message once', async () => {
  const module = new URL('./fixtures/health-services-unset-url.js', import.meta.url);
  const error = await loadServices(module).then(
    () => assert.fail('the factory must throw'),
    (thrown: unknown) => thrown as Error & { code?: string; details?: Record<string, unknown> },
  );
  assert.equal(error.code, 'STEWARD_ERR_SERVICES_MODULE');
  assert.equal(error.details?.cause, 'STEWARD_ERR_INVALID_OPTION');
  const lines: string[] = [];
  pino({}, { write: (line: string) => void lines.push(line) }).fatal({ err: error }, 'services:load:failed');
  const logged = JSON.parse(lines.join('')) as { err: { message: string; stack: string } };
  assert.equal(logged.err.message.split('`connectionString` is not set').length - 1, 1, logged.err.message);
  assert.doesNotMatch(logged.err.stack, /caused by/);
});
