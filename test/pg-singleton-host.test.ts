import assert from 'node:assert/strict';
import { test } from 'node:test';
import pg from 'pg';
import { enqueue, migrate, queueNames } from '../lib/pg.js';
import { dropSchema, pgUrl, randomSuffix, testSchema } from './helpers/pg.js';
import { event, type Spawned, spawnFixture, until } from './helpers/process.js';

function handled(hosts: Spawned[]): string[] {
  return hosts.flatMap((host) => host.logs.filter(event('fixture:handled')).map((line) => line.id as string));
}

test('a singleton event queue under two service hosts: kill -9 of the leader, the other takes over in <= 3 s', async (t) => {
  const schema = testSchema();
  const url = pgUrl(`steward-test-singleton-host-${randomSuffix()}`);
  const producer = new pg.Pool({ connectionString: url, max: 1 });
  t.after(async () => {
    await producer.end();
    await dropSchema(schema);
  });
  // Tables first: the producer must not race the leader's own migration.
  await migrate(producer, queueNames(schema, 'events'));
  const env = {
    FIXTURE_SERVICES: 'pg-singleton-queue.js',
    FIXTURE_PG: url,
    FIXTURE_SCHEMA: schema,
    FIXTURE_LOCK_KEY: `queue-${randomSuffix()}`,
  };
  const hosts = [spawnFixture('services-standalone.js', env), spawnFixture('services-standalone.js', env)];
  t.after(() => {
    for (const host of hosts) host.killAll();
  });
  const leader = await Promise.any(
    hosts.map((host) => host.waitForLog(event('service:leader'), 20_000, 'a leader').then(() => host)),
  );
  const standby = hosts.find((host) => host !== leader)!;
  await standby.waitForLog(event('singleton:acquire:waiting'), 10_000, 'the other host waits');

  const firstIds = await enqueue(
    producer,
    [1, 2, 3].map((n) => ({ type: 'work', payload: n })),
    { schema },
  );
  await until(() => handled(hosts).length >= 3, 10_000, 'first events');
  assert.deepEqual(new Set(leader.logs.filter(event('fixture:handled')).map((l) => l.id)), new Set(firstIds));
  assert.equal(standby.logs.filter(event('fixture:handled')).length, 0, 'the standby host consumed nothing');

  const killedAt = Date.now();
  leader.killAll();
  const took = await standby.waitForLog(event('service:leader'), 10_000, 'takeover');
  const failoverMs = (took.time as number) - killedAt;
  t.diagnostic(`singleton queue failover after kill -9 of the leader host: ${failoverMs} ms`);
  assert.ok(failoverMs <= 3_000, `failover took ${failoverMs} ms`);

  const laterIds = await enqueue(
    producer,
    [4, 5].map((n) => ({ type: 'work', payload: n })),
    { schema },
  );
  await until(() => laterIds.every((id) => handled([standby]).includes(id)), 10_000, 'events after failover');
  standby.child.kill('SIGTERM');
  assert.equal((await standby.exited).code, 0);
});
