import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { get } from './helpers/http.js';
import { event, isAlive, type Spawned, until } from './helpers/process.js';
import { allRunning, startServicesApp } from './helpers/services.js';

const spawned: Spawned[] = [];
after(() => {
  for (const fixture of spawned) fixture.killAll();
});

test('placement primary: services run in the primary, never in a worker, started before workers fork', async () => {
  const app = await startServicesApp(spawned, 'services-basic.js', {
    placement: 'primary',
    statusInterval: 300,
  });
  const view = await app.viewWhen(allRunning, 10_000);
  assert.deepEqual(view.host, { role: 'primary', pid: app.pid });
  assert.deepEqual(
    app.importers().map((line) => line.pid),
    [app.pid],
  );
  const servicesStart = app.logs.findIndex(event('services:start'));
  const firstFork = app.logs.findIndex(event('worker:booting'));
  assert.ok(servicesStart >= 0 && servicesStart < firstFork, 'services start before the first worker');
  assert.ok(!app.logs.some(event('services:fork')), 'no sibling');

  // A rolling restart of the workers (SIGHUP) leaves the in-process services alone.
  const ticker = app.service(view, 'ticker');
  process.kill(app.pid, 'SIGHUP');
  await app.waitForLogs(event('worker:ready'), 4, 20_000);
  await app.waitForLogs(event('worker:dead'), 2, 20_000);
  const recycled = await app.viewWhen(
    (current) => app.service(current, 'ticker').processed > ticker.processed,
  );
  assert.equal(app.service(recycled, 'ticker').since, ticker.since);
  assert.equal(app.service(recycled, 'ticker').restarts, 0);
  assert.equal(app.importers().length, 1);

  // SIGUSR2 restarts the in-process host; workers are untouched.
  const workers = app.workerPids().filter(isAlive);
  const since = app.service(view, 'ticker').since;
  process.kill(app.pid, 'SIGUSR2');
  await app.waitForLog(event('services:restart:done'), 10_000);
  await app.viewWhen(
    (current) => allRunning(current) && app.service(current, 'ticker').since > since,
    10_000,
    'a fresh ticker run',
  );
  assert.deepEqual(app.workerPids().filter(isAlive), workers);
  assert.ok(workers.every(isAlive));
  app.child.kill('SIGTERM');
  assert.equal((await app.exited).code, 0);
});

test('placement primary with misbehaving services: the primary survives, workers serve, ping says 503', async () => {
  const app = await startServicesApp(spawned, 'services-failing.js', {
    placement: 'primary',
    statusInterval: 300,
    grace: 3000,
  });
  const mine = (msg: string, service: string) => (line: Record<string, unknown>) =>
    line.msg === msg && line.service === service && line.pid === app.pid;
  // One that crashes every time reaches `failed`, and the host says it keeps retrying.
  const failed = await app.waitForLog(mine('service:failed', 'crash-always'), 15_000);
  assert.equal(failed.retryInMs, 300);
  // One that throws synchronously at start is restarted and runs.
  await app.waitForLog(mine('service:backoff', 'throws-at-start'), 10_000);
  // One that stalls is restarted by the watchdog.
  const stalled = await app.waitForLog(mine('service:stalled', 'stalls'), 10_000);
  assert.ok((stalled.idleMs as number) >= 300);
  // An exception thrown from a service's stray timer is charged to that service, not the primary.
  await app.waitForLog(mine('service:uncaught-exception', 'throws-later'), 10_000);

  const view = await app.viewWhen(
    (current) => {
      const ok =
        app.service(current, 'throws-at-start').state === 'running' &&
        app.service(current, 'throws-later').state === 'running' &&
        app.service(current, 'throws-later').restarts === 1 &&
        app.service(current, 'stalls').restarts >= 1 &&
        app.service(current, 'crash-always').restarts >= 4;
      return ok;
    },
    10_000,
    'statuses as expected in a worker',
  );
  assert.equal(app.service(view, 'throws-at-start').lastError?.message, 'config not readable yet');
  assert.equal(app.service(view, 'stalls').lastError?.code, 'STEWARD_ERR_SERVICE_STALLED');
  assert.equal(app.service(view, 'throws-later').lastError?.message, 'stray callback failed');
  assert.match(app.service(view, 'crash-always').lastError?.message ?? '', /broker refused/);
  assert.equal(view.healthy, false);

  assert.ok(isAlive(app.pid));
  for (let i = 0; i < 10; i++) assert.equal((await get(`http://${app.address}/`)).status, 200);
  const ping = await get(`http://${app.address}/ping`);
  assert.equal(ping.status, 503);
  const body = JSON.parse(ping.body) as {
    healthy: boolean;
    services: Array<{ name: string; lastError: string }>;
  };
  assert.equal(body.healthy, false);
  const crash = body.services.find((service) => service.name === 'crash-always')!;
  assert.match(crash.lastError, /^Error: broker refused/);
  assert.ok(!ping.body.includes('    at '), 'no stack traces in the ping body');

  // SIGTERM: `ignores-stop` is abandoned after its stopTimeout; the unclean stop makes the exit code 1.
  const stopAt = Date.now();
  app.child.kill('SIGTERM');
  const exit = await app.exited;
  assert.equal(exit.code, 1);
  const timeout = app.logs.find(mine('service:stop:timeout', 'ignores-stop'));
  assert.ok(timeout, 'stop timeout logged');
  assert.ok(Date.now() - stopAt < 3_000, `stopped in ${Date.now() - stopAt} ms`);
  assert.ok(app.logs.some((line) => line.msg === 'cluster:shutdown:done' && line.clean === false));
});

test('placement sibling: a service that always crashes makes every worker ping 503 while HTTP keeps working', async () => {
  const app = await startServicesApp(
    spawned,
    'services-failing.js',
    { statusInterval: 300 },
    { FIXTURE_ONLY: 'crash-always' },
  );
  await app.waitForLog((line) => line.msg === 'service:failed' && line.service === 'crash-always', 15_000);
  await until(async () => (await get(`http://${app.address}/ping`)).status === 503, 5_000, 'ping 503');
  const view = await app.viewWhen(
    (current) => {
      return app.service(current, 'crash-always').state === 'failed';
    },
    5_000,
    'failed as seen by a worker',
  );
  assert.equal(view.host?.role, 'sibling');
  assert.equal(view.healthy, false);
  for (let i = 0; i < 10; i++) assert.equal((await get(`http://${app.address}/`)).status, 200);
  assert.ok(!app.logs.some(event('services:crash')), 'the sibling itself never died');
  app.child.kill('SIGTERM');
  assert.equal((await app.exited).code, 0);
});
