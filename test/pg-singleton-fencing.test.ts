import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import pg from 'pg';
import pino from 'pino';
import { acquireSingleton, assertFencingToken, type FencingToken, sessionBounds } from '../lib/pg.js';
import { resolveService } from '../lib/services/service-options.js';
import { adminQuery, PG_BASE, pgUrl, randomSuffix, terminateBackends } from './helpers/pg.js';
import { event, type LogLine, type Spawned, spawnFixture, until } from './helpers/process.js';

const logger = pino({ level: 'silent' });
const spawned: Spawned[] = [];
const tables: string[] = [];
after(async () => {
  for (const fixture of spawned) fixture.killAll();
  for (const table of tables) await adminQuery(`DROP TABLE IF EXISTS ${table}`);
});

async function tickTable(): Promise<string> {
  const table = `fencing_ticks_${randomSuffix()}`;
  tables.push(table);
  await adminQuery(
    `CREATE TABLE ${table} (id bigserial PRIMARY KEY, epoch bigint NOT NULL, instance text NOT NULL,
                            at timestamptz NOT NULL DEFAULT clock_timestamp())`,
  );
  return table;
}

/** Inserts one row in a transaction guarded by `token`; rolls back and rethrows when refused. */
async function fencedInsert(pool: pg.Pool, table: string, token: FencingToken): Promise<void> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    await assertFencingToken(client, token);
    await client.query(`INSERT INTO ${table} (epoch, instance) VALUES ($1, 'test')`, [token.epoch]);
    await client.query('COMMIT');
  } catch (error) {
    await client.query('ROLLBACK');
    throw error;
  } finally {
    client.release();
  }
}

test('the session bound and the stand-down deadline follow checkInterval', () => {
  assert.deepEqual(sessionBounds(750), { sessionTimeout: 2_250, standDownAfter: 1_500 });
  assert.deepEqual(sessionBounds(100), { sessionTimeout: 1_500, standDownAfter: 1_000 });
  assert.deepEqual(sessionBounds(5_000), { sessionTimeout: 15_000, standDownAfter: 10_000 });
  const service = resolveService(
    { name: 'fenced', run: async () => {}, singleton: { connectionString: PG_BASE } },
    0,
  );
  assert.equal(service.singleton?.checkInterval, 750);
  assert.deepEqual(service.singleton?.epochTable, { schema: 'public', table: 'steward_singleton_epochs' });
  assert.throws(
    () =>
      resolveService(
        {
          name: 'fenced',
          run: async () => {},
          singleton: { connectionString: PG_BASE, epochTable: { table: 'x; DROP TABLE y' } },
        },
        0,
      ),
    (error: { code?: string; message: string }) =>
      error.code === 'STEWARD_ERR_INVALID_IDENTIFIER' && /singleton\.epochTable\.table/.test(error.message),
  );
});

test('each acquisition increments the epoch; a write with the stale token is refused and rolled back', async (t) => {
  const app = `steward-test-fencing-${randomSuffix()}`;
  const key = `fencing-${randomSuffix()}`;
  const table = await tickTable();
  const options = { connectionString: pgUrl(app), key, checkInterval: 200, logger };
  const stop = new AbortController();
  t.after(() => stop.abort());
  const pool = new pg.Pool({ connectionString: pgUrl(`${app}-writer`), max: 2 });
  t.after(() => pool.end());

  const first = await acquireSingleton(options, stop.signal);
  assert.ok(first?.fencing);
  await fencedInsert(pool, table, first.fencing);

  // The server ends the holder's session (as it does for a frozen holder): the next holder gets epoch + 1.
  await terminateBackends(app);
  await until(() => first.lost.aborted, 5_000, 'the first lease to be lost');
  await first.release();
  const second = await acquireSingleton(options, stop.signal);
  assert.ok(second?.fencing);
  t.after(() => second.release());
  assert.equal(BigInt(second.fencing.epoch), BigInt(first.fencing.epoch) + 1n);

  await assert.rejects(
    fencedInsert(pool, table, first.fencing),
    (error: { code?: string; details?: unknown }) => {
      assert.equal(error.code, 'STEWARD_ERR_SINGLETON_FENCED');
      assert.deepEqual(error.details, { key, epoch: first.fencing!.epoch, current: second.fencing!.epoch });
      return true;
    },
  );
  await fencedInsert(pool, table, second.fencing);
  const rows = await adminQuery<{ epoch: string }>(`SELECT epoch::text AS epoch FROM ${table} ORDER BY id`);
  assert.deepEqual(
    rows.map((row) => row.epoch),
    [first.fencing.epoch, second.fencing.epoch],
    'the stale write left nothing behind',
  );
});

test('a new holder starts only after a transaction that checked the old token has ended', async (t) => {
  const app = `steward-test-fencing-${randomSuffix()}`;
  const key = `fencing-order-${randomSuffix()}`;
  const options = { connectionString: pgUrl(app), key, checkInterval: 200, logger };
  const stop = new AbortController();
  t.after(() => stop.abort());
  const first = await acquireSingleton(options, stop.signal);
  assert.ok(first?.fencing);
  const writer = new pg.Client({ connectionString: pgUrl(`${app}-writer`) });
  await writer.connect();
  t.after(() => writer.end());
  await writer.query('BEGIN');
  await assertFencingToken(writer, first.fencing);

  await terminateBackends(app);
  await first.release();
  let acquiredAt = 0;
  const next = acquireSingleton(options, stop.signal).then((lease) => {
    acquiredAt = Date.now();
    return lease;
  });
  // The old holder's transaction is still open: the new epoch waits for it (the lock attempts repeat).
  await until(async () => (await waitingOnEpochRow(app)) > 0, 5_000, 'the epoch increment to wait');
  assert.equal(acquiredAt, 0, 'no new holder while the old epoch is being written with');
  const committedAt = Date.now();
  await writer.query('COMMIT');
  const second = await next;
  assert.ok(second?.fencing);
  t.after(() => second.release());
  assert.ok(acquiredAt >= committedAt, 'acquired after the old transaction ended');
  assert.equal(BigInt(second.fencing.epoch), BigInt(first.fencing.epoch) + 1n);
});

test('a role that may not create the epoch table is told how to create it', async (t) => {
  const role = `steward_noddl_${randomSuffix()}`;
  const schema = `steward_fence_${randomSuffix()}`;
  await adminQuery(`CREATE ROLE ${role} LOGIN`);
  await adminQuery(`CREATE SCHEMA ${schema}`);
  await adminQuery(`GRANT USAGE ON SCHEMA ${schema} TO ${role}`);
  t.after(async () => {
    await adminQuery(`DROP SCHEMA ${schema} CASCADE`);
    await adminQuery(`DROP ROLE ${role}`);
  });
  const url = new URL(pgUrl(`steward-test-fencing-${randomSuffix()}`));
  url.username = role;
  const lines: Array<{ msg?: string; err?: { code?: string; message?: string } }> = [];
  const capture = pino({ level: 'warn' }, { write: (line: string) => void lines.push(JSON.parse(line)) });
  const stop = new AbortController();
  const acquiring = acquireSingleton(
    {
      connectionString: url.href,
      key: `noddl-${randomSuffix()}`,
      checkInterval: 100,
      epochTable: { schema, table: 'epochs' },
      logger: capture,
    },
    stop.signal,
  );
  const failed = await until(
    () => lines.find((line) => line.msg === 'singleton:acquire:failed'),
    10_000,
    'the acquisition to fail',
  );
  stop.abort();
  assert.equal(await acquiring, null, 'no lease without an epoch');
  assert.ok(failed);
  assert.equal(failed.err?.code, 'STEWARD_ERR_PG_CONNECTION');
  assert.match(
    failed.err?.message ?? '',
    new RegExp(`may not create it: create it once with \`CREATE TABLE IF NOT EXISTS "${schema}"\\."epochs"`),
  );
  assert.match(failed.err?.message ?? '', /singleton\.epochTable: false/);
});

async function waitingOnEpochRow(applicationName: string): Promise<number> {
  const rows = await adminQuery<{ n: string }>(
    `SELECT count(*) AS n FROM pg_stat_activity
      WHERE application_name = $1 AND wait_event_type = 'Lock' AND query LIKE 'INSERT INTO%steward_singleton_epochs%'`,
    [applicationName],
  );
  return Number(rows[0]!.n);
}

function startInstance(env: Record<string, string>, instance: string): Spawned {
  const fixture = spawnFixture('../../dist/cli/main.js', { ...env, INSTANCE: instance }, [
    'services',
    'test/fixtures/pg-fencing-services.js',
  ]);
  spawned.push(fixture);
  return fixture;
}

const leaderOf = (line: LogLine) => line.msg === 'fixture:first-write';

test('a frozen leader (SIGSTOP) is replaced within 3 s and stands down at once when it resumes', async (t) => {
  const table = await tickTable();
  const env = {
    PG_URL: pgUrl(`steward-test-fencing-${randomSuffix()}`),
    SINGLETON_KEY: `frozen-${randomSuffix()}`,
    TICK_TABLE: table,
  };
  const first = startInstance(env, 'a');
  const firstLead = await first.waitForLog(leaderOf, 20_000, 'a leads');
  const second = startInstance(env, 'b');
  await second.waitForLog(event('singleton:acquire:waiting'), 20_000, 'b waits');

  const frozenAt = Date.now();
  process.kill(first.pid, 'SIGSTOP');
  let resumed = false;
  try {
    const took = await second.waitForLog(leaderOf, 10_000, 'b takes over');
    const failoverMs = (took.time as number) - frozenAt;
    t.diagnostic(`frozen leader replaced after ${failoverMs} ms`);
    assert.ok(failoverMs <= 3_000, `takeover took ${failoverMs} ms`);
    const resumedAt = Date.now();
    process.kill(first.pid, 'SIGCONT');
    resumed = true;
    const aborted = await first.waitForLog(event('fixture:signal:aborted'), 5_000, 'a stands down');
    const standDownMs = (aborted.time as number) - resumedAt;
    t.diagnostic(`resumed leader stood down after ${standDownMs} ms`);
    assert.ok(standDownMs <= 1_000, `stand-down took ${standDownMs} ms`);
    await first.waitForLog(event('singleton:lost'), 5_000, 'the lock reported lost');
  } finally {
    if (!resumed) process.kill(first.pid, 'SIGCONT');
  }
  await first.waitForLog(event('fixture:stopped'), 10_000, 'a settles');
  const epochs = await adminQuery<{ epoch: string; first_id: string; last_id: string }>(
    `SELECT epoch::text, min(id)::text AS first_id, max(id)::text AS last_id FROM ${table} GROUP BY epoch ORDER BY epoch`,
  );
  assert.equal(epochs.length, 2, 'two epochs wrote');
  assert.equal(epochs[0]!.epoch, String(firstLead.epoch));
  assert.ok(
    BigInt(epochs[0]!.last_id) < BigInt(epochs[1]!.first_id),
    'no write of the old epoch after the new leader wrote',
  );
});
