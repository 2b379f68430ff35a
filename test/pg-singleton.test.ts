import assert from 'node:assert/strict';
import { test } from 'node:test';
import pino from 'pino';
import { acquireSingleton, singletonLockKey } from '../lib/pg.js';
import { countBackends, pgUrl, randomSuffix, terminateBackends } from './helpers/pg.js';
import { event, spawnFixture, until } from './helpers/process.js';

const logger = pino({ level: 'silent' });

async function lockHolders(key: string): Promise<number> {
  const { adminQuery } = await import('./helpers/pg.js');
  const rows = await adminQuery<{ n: string }>(
    `SELECT count(*) AS n FROM pg_locks
      WHERE locktype = 'advisory' AND granted
        AND ((classid::bigint << 32) | objid::bigint) = ($1::bigint & x'ffffffffffffffff'::bigint)`,
    [singletonLockKey(key)],
  );
  return Number(rows[0]!.n);
}

test('kill -9 of the holder hands the singleton to the other process within 3 s', async (t) => {
  const app = `steward-test-singleton-${randomSuffix()}`;
  const env = { PG_URL: pgUrl(app), SINGLETON_KEY: `failover-${randomSuffix()}`, CHECK_INTERVAL: '500' };
  const first = spawnFixture('pg-singleton.js', env);
  t.after(() => first.killAll());
  await first.waitForLog(event('fixture:leader'), 15_000, 'first leader');
  const second = spawnFixture('pg-singleton.js', env);
  t.after(() => second.killAll());
  await second.waitForLog(event('singleton:acquire:waiting'), 15_000, 'second waiting');
  assert.equal(second.logs.filter(event('fixture:leader')).length, 0, 'only one holder while both live');

  const killedAt = Date.now();
  first.killAll();
  const took = await second.waitForLog(event('fixture:leader'), 10_000, 'takeover');
  const failoverMs = (took.time as number) - killedAt;
  t.diagnostic(`singleton failover after kill -9: ${failoverMs} ms`);
  assert.ok(failoverMs <= 3_000, `failover took ${failoverMs} ms`);

  second.child.kill('SIGTERM');
  const exit = await second.exited;
  assert.equal(exit.code, 0);
  assert.ok(second.logs.some(event('singleton:released')), 'released on graceful stop');
});

test('a terminated lock backend aborts `lost`; the lock is taken again afterwards', async (t) => {
  const app = `steward-test-singleton-${randomSuffix()}`;
  const key = `lost-${randomSuffix()}`;
  const options = { connectionString: pgUrl(app), key, checkInterval: 200, logger };
  const stop = new AbortController();
  t.after(() => stop.abort());
  const lease = await acquireSingleton(options, stop.signal);
  assert.ok(lease);
  assert.equal(await lockHolders(key), 1);
  assert.equal(await terminateBackends(app), 1);
  await until(() => lease.lost.aborted, 5_000, 'lost to abort');
  assert.equal((lease.lost.reason as { code?: string }).code, 'STEWARD_ERR_PG_CONNECTION');
  await lease.release();
  const again = await acquireSingleton(options, stop.signal);
  assert.ok(again);
  await again.release();
  await until(async () => (await countBackends(app)) === 0, 5_000, 'connection closed on release');
  assert.equal(await lockHolders(key), 0);
});

test('a waiting acquire resolves null when its signal aborts, and holds no connection', async (t) => {
  const app = `steward-test-singleton-${randomSuffix()}`;
  const key = `wait-${randomSuffix()}`;
  const options = { connectionString: pgUrl(app), key, checkInterval: 100, logger };
  const holderStop = new AbortController();
  const holder = await acquireSingleton(options, holderStop.signal);
  assert.ok(holder);
  t.after(() => holder.release());
  const waiterStop = new AbortController();
  const waiting = acquireSingleton(options, waiterStop.signal);
  await until(async () => (await countBackends(app)) >= 1, 2_000, 'holder connected');
  setTimeout(() => waiterStop.abort(), 300);
  assert.equal(await waiting, null);
  assert.equal(await countBackends(app), 1, 'only the holder is connected');
});

test('singleton options are validated with coded errors', async () => {
  const signal = new AbortController().signal;
  await assert.rejects(
    acquireSingleton({ connectionString: pgUrl('x'), key: '', checkInterval: 100, logger }, signal),
    { code: 'STEWARD_ERR_INVALID_OPTION', message: /singleton\.key/ },
  );
  await assert.rejects(
    acquireSingleton({ connectionString: pgUrl('x'), key: 'k', checkInterval: -1, logger }, signal),
    { code: 'STEWARD_ERR_INVALID_OPTION', message: /singleton\.checkInterval.*-1/ },
  );
});
