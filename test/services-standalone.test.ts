import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { get } from './helpers/http.js';
import { PG_BASE, pgUrl, randomSuffix, terminateBackends } from './helpers/pg.js';
import { event, isAlive, type Spawned, spawnFixture, until } from './helpers/process.js';
import { freePort } from './helpers/services.js';

const spawned: Spawned[] = [];
after(() => {
  for (const fixture of spawned) fixture.killAll();
});

function start(env: Record<string, string>): Spawned {
  const fixture = spawnFixture('services-standalone.js', env);
  spawned.push(fixture);
  return fixture;
}

test('runServices: services alone, ping answers from the same process, SIGTERM stops them gracefully', async () => {
  const port = await freePort();
  const fixture = start({ PORT: String(port) });
  await fixture.waitForLog(event('fixture:ping:listening'), 10_000);
  const ping = await until(
    async () => {
      const reply = await get(`http://127.0.0.1:${port}/ping`);
      return reply.status === 200 ? reply : null;
    },
    5_000,
    'ping 200',
  );
  const body = JSON.parse(ping!.body) as {
    host: { role: string; pid: number };
    services: { name: string }[];
  };
  assert.deepEqual(body.host, { role: 'standalone', pid: fixture.pid });
  assert.deepEqual(body.services.map((s) => s.name).sort(), ['idle', 'ticker']);
  fixture.child.kill('SIGTERM');
  assert.deepEqual(await fixture.exited, { code: 0, signal: null });
  const stopped = fixture.logs.filter(event('service:stopped')).map((line) => line.service);
  assert.deepEqual(stopped.sort(), ['idle', 'ticker']);
});

test('runServices: a service that ignores its stop signal is abandoned after stopTimeout; exit code 1', async () => {
  const fixture = start({ FIXTURE_SERVICES: 'services-failing.js', FIXTURE_ONLY: 'ignores-stop' });
  await fixture.waitForLog(event('services:start'), 10_000);
  await until(() => fixture.logs.some(event('fixture:standalone:started')), 5_000);
  const stopAt = Date.now();
  fixture.child.kill('SIGTERM');
  const exit = await fixture.exited;
  const took = Date.now() - stopAt;
  assert.equal(exit.code, 1);
  assert.ok(took >= 400 && took < 2_500, `stopped after ${took} ms (stopTimeout 400)`);
  const timeout = fixture.logs.find(event('service:stop:timeout', { service: 'ignores-stop' }));
  assert.equal((timeout?.err as { code?: string })?.code, 'STEWARD_ERR_SERVICE_STOP_TIMEOUT');
});

test('runServices: a second signal exits at once without waiting for stopTimeout', async () => {
  const fixture = start({ FIXTURE_SERVICES: 'services-failing.js', FIXTURE_ONLY: 'ignores-stop' });
  await fixture.waitForLog(event('fixture:standalone:started'), 10_000);
  fixture.child.kill('SIGTERM');
  await fixture.waitForLog(event('services:signal'), 5_000);
  fixture.child.kill('SIGTERM');
  assert.equal((await fixture.exited).code, 1);
  assert.ok(fixture.logs.some(event('services:stop:forced')));
  assert.ok(!fixture.logs.some(event('service:stop:timeout')), 'did not wait for stopTimeout');
});

test('singleton across hosts: one leader, the other in standby; takeover on lock loss and on kill -9', async (t) => {
  const suffix = randomSuffix();
  const key = `steward-services-test-${suffix}`;
  const hosts = ['a', 'b'].map((name) => {
    const applicationName = `steward-svc-${name}-${suffix}`;
    const fixture = start({
      FIXTURE_SERVICES: 'services-singleton.js',
      FIXTURE_LOCK_KEY: key,
      FIXTURE_PG: pgUrl(applicationName),
    });
    return { name, applicationName, fixture };
  });
  const [a, b] = hosts as [(typeof hosts)[0], (typeof hosts)[0]];
  t.diagnostic(`PostgreSQL: ${PG_BASE}`);
  const leaderOf = async () => {
    const [first] = await Promise.race(
      hosts.map((host) => host.fixture.waitForLog(event('service:leader'), 15_000).then(() => [host])),
    );
    return first!;
  };
  const leader = await leaderOf();
  const follower = leader === a ? b : a;
  await follower.fixture.waitForLog(event('singleton:acquire:waiting'), 10_000);
  assert.ok(!follower.fixture.logs.some(event('fixture:leader:running')), 'the follower never ran it');

  // The leader's lock connection dies: its run is aborted, it goes back to standby, the follower takes over.
  await terminateBackends(leader.applicationName);
  await leader.fixture.waitForLog(event('service:leader:lost'), 5_000);
  await leader.fixture.waitForLog(event('fixture:leader:stopped'), 5_000);
  // The host that lost the lock pauses before competing again, so the standby host takes over.
  await follower.fixture.waitForLog(event('fixture:leader:running'), 10_000);
  assert.equal(leader.fixture.logs.filter(event('fixture:leader:running')).length, 1);
  await leader.fixture.waitForLogs(event('service:standby'), 2, 5_000);

  // kill -9 of the new leader: the first host becomes leader again.
  const killedAt = Date.now();
  follower.fixture.child.kill('SIGKILL');
  await until(
    () => leader.fixture.logs.filter(event('fixture:leader:running')).length === 2,
    10_000,
    'leader again after kill -9',
  );
  t.diagnostic(`takeover after kill -9 of the leader: ${Date.now() - killedAt} ms (checkInterval 200 ms)`);
  leader.fixture.child.kill('SIGTERM');
  assert.equal((await leader.fixture.exited).code, 0);
  assert.ok(!isAlive(follower.fixture.pid));
});
