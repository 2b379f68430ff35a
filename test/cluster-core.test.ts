import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { addressFromReady, get } from './helpers/http.js';
import { event, isAlive, type Spawned, spawnFixture, until } from './helpers/process.js';

const spawned: Spawned[] = [];
after(() => {
  for (const fixture of spawned) fixture.killAll();
});

function start(env: Record<string, string> = {}): Spawned {
  const fixture = spawnFixture('http-cluster.js', env);
  spawned.push(fixture);
  return fixture;
}

async function readyAddress(fixture: Spawned, workers = 2): Promise<string> {
  const ready = await fixture.waitForLogs(event('worker:ready'), workers, 15_000);
  return addressFromReady(ready[0]!);
}

test('N workers serve requests, each from its own process', async () => {
  const fixture = start({ FIXTURE_OPTIONS: JSON.stringify({ workers: 3 }) });
  const address = await readyAddress(fixture, 3);
  const pids = new Set<number>();
  await until(
    async () => {
      const reply = await get(`http://${address}/`);
      assert.equal(reply.status, 200);
      pids.add((JSON.parse(reply.body) as { pid: number }).pid);
      return pids.size === 3;
    },
    10_000,
    'answers from three distinct worker processes',
  );
  assert.ok(!pids.has(fixture.pid), 'the primary never serves HTTP');
  fixture.child.kill('SIGTERM');
  assert.deepEqual(await fixture.exited, { code: 0, signal: null });
});

test('a worker killed with SIGKILL is replaced and requests keep succeeding', async () => {
  const fixture = start();
  const address = await readyAddress(fixture);
  const victim = fixture.logs.find(event('worker:ready'))!;
  process.kill(victim.workerPid as number, 'SIGKILL');
  const dead = await fixture.waitForLog(event('worker:dead', { worker: victim.worker }));
  assert.equal(dead.signal, 'SIGKILL');
  await fixture.waitForLog(
    (line) => line.msg === 'worker:ready' && (line.worker as number) > 2,
    10_000,
    'replacement ready',
  );
  for (let i = 0; i < 20; i++) assert.equal((await get(`http://${address}/`)).status, 200);
  // Revived on 'exit' although the killed worker never sent 'disconnect'.
  assert.ok(fixture.logs.some((line) => line.msg === 'worker:crash' && line.worker === victim.worker));
  fixture.child.kill('SIGTERM');
  assert.equal((await fixture.exited).code, 0);
});

test('SIGTERM under load: in-flight requests complete, primary exits 0', async () => {
  const fixture = start({ FIXTURE_LOG_REQUESTS: '1' });
  const address = await readyAddress(fixture);
  const inFlight = Array.from({ length: 10 }, () => get(`http://${address}/slow?delay=700`));
  await fixture.waitForLogs(event('fixture:request'), 10, 10_000);
  fixture.child.kill('SIGTERM');
  const replies = await Promise.allSettled(inFlight);
  const failed = replies.filter((reply) => reply.status === 'rejected' || reply.value.status !== 200);
  assert.equal(failed.length, 0, `failed in-flight requests: ${JSON.stringify(failed)}`);
  for (const reply of replies) {
    if (reply.status === 'fulfilled') assert.equal(reply.value.headers.connection, 'close');
  }
  assert.deepEqual(await fixture.exited, { code: 0, signal: null });
  assert.ok(fixture.logs.some(event('cluster:shutdown:done', { clean: true })));
});

test('a worker that throws at boot does not fork-loop: the primary exits 1 naming the error', async () => {
  const fixture = start({
    FIXTURE_BEHAVIOUR: 'throw-at-boot',
    FIXTURE_OPTIONS: JSON.stringify({
      restart: { intensity: 3, period: 10_000, initialDelay: 10, maxDelay: 50 },
    }),
  });
  const { code } = await fixture.exited;
  assert.equal(code, 1);
  const fatal = fixture.logs.find(
    (line) => typeof line.msg === 'string' && line.msg.startsWith('cluster:crash-loop'),
  );
  assert.ok(fatal, 'one clear fatal line');
  assert.match(fatal.msg!, /database unreachable at boot/);
  assert.equal(fatal.code, 'STEWARD_ERR_CRASH_LOOP');
  const forks = fixture.logs.filter(event('worker:booting')).length;
  assert.ok(forks <= 2 + 4, `forked ${forks} workers: bounded by the intensity limit`);
  // No process of the group is left behind.
  await until(() => !isAlive(-fixture.pid), 5_000, 'process group gone');
});

test('a second SIGINT forces: workers stuck in requests are killed and the primary exits 1', async () => {
  const fixture = start({ FIXTURE_LOG_REQUESTS: '1', FIXTURE_OPTIONS: JSON.stringify({ grace: 60_000 }) });
  const address = await readyAddress(fixture);
  const stuck = get(`http://${address}/slow?delay=30000`).catch((error: Error) => error);
  await fixture.waitForLog(event('fixture:request'));
  fixture.child.kill('SIGINT');
  await fixture.waitForLog(event('cluster:shutdown:start'));
  fixture.child.kill('SIGINT');
  assert.equal((await fixture.exited).code, 1);
  assert.ok(fixture.logs.some(event('cluster:shutdown:forced')));
  assert.ok((await stuck) instanceof Error, 'the stuck request was cut by the forced stop');
  await until(() => !isAlive(-fixture.pid), 5_000, 'process group gone');
});

test('a second SIGINT also kills the services sibling: nothing of the cluster survives a forced stop', async () => {
  // `ignores-stop` never settles, so only the forced stop can end the sibling within the test.
  const fixture = spawnFixture('services-app.js', {
    FIXTURE_OPTIONS: JSON.stringify({ grace: 60_000 }),
    FIXTURE_SERVICES: 'services-failing.js',
    FIXTURE_ONLY: 'ignores-stop',
  });
  spawned.push(fixture);
  await fixture.waitForLogs(event('worker:ready'), 2, 15_000);
  const forked = await fixture.waitForLog(event('services:fork'), 15_000);
  await fixture.waitForLog(event('services:running'), 15_000);
  fixture.child.kill('SIGINT');
  await fixture.waitForLog(event('cluster:shutdown:start'));
  fixture.child.kill('SIGINT');
  assert.equal((await fixture.exited).code, 1);
  await until(() => !isAlive(forked.siblingPid as number), 5_000, 'sibling killed');
  await until(() => !isAlive(-fixture.pid), 5_000, 'process group gone');
  // Killed, not left to finish its own graceful stop (which logs when `ignores-stop` is abandoned).
  assert.equal(fixture.logs.filter(event('services:stop:done')).length, 0);
});

test('a web-only cluster is healthy from the first request: workers get the status however early they load', async () => {
  const fixture = spawnFixture('web-only-ping.js');
  spawned.push(fixture);
  const address = await readyAddress(fixture);
  // Fresh connections alternate between the workers (round-robin): each must answer 200 at once, not
  // only after the next periodic status push.
  for (let i = 0; i < 10; i++) {
    const reply = await get(`http://${address}/ping`);
    assert.equal(reply.status, 200, reply.body);
    assert.equal((JSON.parse(reply.body) as { healthy: boolean }).healthy, true);
  }
  fixture.child.kill('SIGTERM');
  assert.equal((await fixture.exited).code, 0);
});

test('SIGTERM while workers are still booting: they are drained, not killed, and the primary exits 0', async () => {
  const fixture = start();
  await fixture.waitForLogs(event('worker:booting'), 2, 10_000);
  fixture.child.kill('SIGTERM');
  assert.deepEqual(await fixture.exited, { code: 0, signal: null });
  assert.ok(fixture.logs.some(event('cluster:shutdown:done', { clean: true })));
});
