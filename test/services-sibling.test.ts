import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { event, freePort, isAlive, type Spawned, spawnFixture, until } from './helpers/process.js';
import { allRunning, startServicesApp } from './helpers/services.js';

const STATUS_INTERVAL = 400;
const spawned: Spawned[] = [];
after(() => {
  for (const fixture of spawned) fixture.killAll();
});

test('20 worker recycles: the sibling pid and its in-memory state stay the same while events keep flowing', async (t) => {
  const app = await startServicesApp(spawned, 'services-basic.js', { statusInterval: STATUS_INTERVAL });
  await until(async () => allRunning(await app.view()), 10_000, 'services running');
  const first = await app.view();
  const ticker = app.service(first, 'ticker');
  const samples = [ticker.processed];
  const started = Date.now();
  // Two workers: each SIGHUP (rolling restart) recycles both.
  for (let round = 1; round <= 10; round++) {
    process.kill(app.pid, 'SIGHUP');
    await app.waitForLogs(event('worker:ready'), 2 + 2 * round, 20_000);
    await app.waitForLogs((line) => line.msg === 'worker:dead', 2 * round, 20_000);
    const view = await app.view();
    assert.equal(view.host!.pid, first.host!.pid, `sibling pid after round ${round}`);
    const now = app.service(view, 'ticker');
    assert.equal(now.restarts, 0);
    assert.equal(now.since, ticker.since, 'no state change of the service');
    samples.push(now.processed);
  }
  t.diagnostic(`20 recycles in ${Date.now() - started} ms; ticker processed ${samples.join(' → ')}`);
  for (let i = 1; i < samples.length; i++)
    assert.ok(samples[i]! > samples[i - 1]!, `events flowed: ${samples}`);
  const retired = app.logs.filter((line) => line.msg === 'worker:dead').length;
  assert.ok(retired >= 20, `${retired} workers retired`);
  // The module was loaded once, so its in-memory state (bootId) is the one from the start.
  assert.equal(app.importers().length, 1);
  assert.equal(app.logs.filter(event('services:fork')).length, 1);
  app.child.kill('SIGTERM');
  assert.equal((await app.exited).code, 0);
});

test('SIGUSR2 restarts the services host only: a new sibling, the same workers', async () => {
  const app = await startServicesApp(spawned, 'services-basic.js', { statusInterval: STATUS_INTERVAL });
  await until(async () => allRunning(await app.view()), 10_000, 'services running');
  const before = (await app.view()).host!.pid;
  const workersBefore = app.workerPids();
  process.kill(app.pid, 'SIGUSR2');
  await app.waitForLog(event('services:restart:done'), 20_000);
  const view = await app.viewWhen(
    (current) => {
      return current.host!.pid !== before && allRunning(current);
    },
    20_000,
    'running in a new sibling',
  );
  assert.equal(app.service(view, 'ticker').restarts, 0);
  assert.ok(!isAlive(before));
  // The old sibling stopped its services gracefully: a stop, not a crash.
  assert.ok(app.logs.some((line) => line.msg === 'service:stopped' && line.pid === before));
  assert.ok(!app.logs.some(event('services:crash')));
  assert.deepEqual(app.workerPids(), workersBefore);
  assert.ok(workersBefore.every(isAlive));
  app.child.kill('SIGTERM');
  assert.equal((await app.exited).code, 0);
});

test('SIGTERM: workers drain while services settle; the sibling exits and the primary exits 0', async () => {
  const app = await startServicesApp(spawned, 'services-basic.js', { statusInterval: STATUS_INTERVAL });
  await until(async () => allRunning(await app.view()), 10_000, 'services running');
  const sibling = (await app.view()).host!.pid;
  app.child.kill('SIGTERM');
  assert.equal((await app.exited).code, 0);
  const stopped = app.logs.filter((line) => line.msg === 'service:stopped' && line.pid === sibling);
  assert.deepEqual(stopped.map((line) => line.service).sort(), ['idle', 'ticker']);
  assert.ok(app.logs.some((line) => line.msg === 'services:exit' && line.code === 0));
  await until(() => !isAlive(sibling), 2_000, 'sibling gone');
});

test('the sibling leaves on its own when the primary is killed with SIGKILL', async () => {
  const app = await startServicesApp(spawned, 'services-basic.js', { statusInterval: STATUS_INTERVAL });
  await until(async () => allRunning(await app.view()), 10_000, 'services running');
  const sibling = (await app.view()).host!.pid;
  process.kill(app.pid, 'SIGKILL');
  await app.waitForLog(
    (line) => line.msg === 'sibling:stop' && line.reason === 'primary-disconnected',
    5_000,
  );
  await until(() => !isAlive(sibling), 5_000, 'orphaned sibling exited');
});

test('a services module that cannot load: coded error from the sibling, the primary exits 78 without re-forking', async () => {
  const fixture = spawnFixture('services-app.js', {
    FIXTURE_SERVICES: 'services-invalid.js',
    FIXTURE_OPTIONS: JSON.stringify({ statusInterval: STATUS_INTERVAL }),
    FIXTURE_INVALID: 'factory-throws',
    PORT: String(await freePort()),
  });
  spawned.push(fixture);
  const failed = await fixture.waitForLog(event('services:load:failed'), 10_000);
  assert.equal((failed.err as { code?: string }).code, 'STEWARD_ERR_SERVICES_MODULE');
  const fatal = await fixture.waitForLog(event('cluster:config-error'), 10_000);
  assert.equal(fatal.code, 'STEWARD_ERR_SERVICES_MODULE');
  assert.match(String((fatal.err as { message?: string }).message), /AMQP_URL is not set/);
  assert.equal((await fixture.exited).code, 78);
  assert.equal(fixture.logs.filter(event('services:fork')).length, 1);
  assert.ok(!fixture.logs.some(event('services:crash')));
});

test('a sibling whose event loop is blocked is killed after ten silent push intervals and re-forked', async () => {
  const app = await startServicesApp(
    spawned,
    'services-failing.js',
    { statusInterval: 200 },
    { FIXTURE_ONLY: 'blocks-loop' },
  );
  const first = await app.waitForLog(event('services:running'), 10_000);
  const hung = await app.waitForLog(event('services:unresponsive', { siblingPid: first.siblingPid }), 10_000);
  assert.ok((hung.silentMs as number) >= 2_000);
  const crash = await app.waitForLog(event('services:crash', { siblingPid: first.siblingPid }), 5_000);
  assert.equal(crash.signal, 'SIGKILL');
  await app.waitForLog(
    (line) => line.msg === 'services:running' && line.siblingPid !== first.siblingPid,
    10_000,
    'a new sibling running',
  );
  const view = await app.viewWhen((current) => current.host?.pid !== first.siblingPid, 5_000);
  assert.equal(view.host?.role, 'sibling');
  app.killAll();
});
