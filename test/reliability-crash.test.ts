import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { get } from './helpers/http.js';
import { event, type LogLine, type Spawned, spawnFixture } from './helpers/process.js';
import { parseExposition, total } from './helpers/prometheus.js';
import { freePort, startServicesApp } from './helpers/services.js';

const spawned: Spawned[] = [];
after(() => {
  for (const fixture of spawned) fixture.killAll();
});

const time = (line: LogLine) => line.time as number;

/** A GET retried on connection errors, as a load balancer in front of the cluster would. */
async function getRetrying(url: string, deadline: number): Promise<{ status: number; retries: number }> {
  for (let retries = 0; ; retries++) {
    try {
      return { status: (await get(url, { timeoutMs: 2_000 })).status, retries };
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
}

test('a worker crashing after N requests is re-forked with growing backoff and counted; no fork loop', async () => {
  const port = await freePort();
  // One worker, so each fork follows exactly one crash and the backoff can be read from the log times.
  const app = spawnFixture('reliability-crashy.js', {
    PORT: String(port),
    CRASH_AFTER: '3',
    CRASH_WORKERS: '1',
  });
  spawned.push(app);
  const control = await app.waitForLog(event('control:listening'), 15_000);
  await app.waitForLogs(event('worker:ready'), 1, 15_000);
  const deadline = Date.now() + 30_000;
  let retries = 0;
  for (let i = 0; i < 18; i++) {
    const reply = await getRetrying(`http://127.0.0.1:${port}/`, deadline);
    assert.equal(reply.status, 200);
    retries += reply.retries;
  }
  const crashes = await app.waitForLogs(event('worker:crash'), 6, 10_000);
  assert.ok(crashes.every((line) => line.cause === 'crash' && line.code !== 0));
  // Backoff: the wait between a crash and the next fork grows with the crashes in the period.
  const boots = app.logs.filter(event('worker:booting'));
  const waits = crashes.flatMap((crash) => {
    const next = boots.find((boot) => time(boot) >= time(crash));
    return next ? [time(next) - time(crash)] : [];
  });
  assert.ok(waits.length >= 5, 'crashes followed by a fork');
  // restart: initialDelay 100, maxDelay 800, no jitter: 100, 200, 400, then 800 ms.
  assert.ok(waits[0]! < 300, `first re-fork after ${waits[0]} ms`);
  assert.ok(waits[2]! >= 350, `third re-fork after ${waits[2]} ms`);
  assert.ok(
    waits.slice(3).every((wait) => wait >= 750),
    `late re-forks waited ${waits.join(', ')} ms`,
  );
  // No fork loop: one fork per crash, plus the first.
  assert.ok(boots.length <= app.logs.filter(event('worker:crash')).length + 1);
  // Crashes are counted where an operator looks.
  const metrics = await get(`http://127.0.0.1:${control.port as number}/metrics`);
  const crashed = total(parseExposition(metrics.body), 'steward_worker_exits_total', { cause: 'crash' });
  assert.ok(crashed >= 6, `steward_worker_exits_total{cause="crash"} = ${crashed}`);
  assert.ok(!app.logs.some((line) => String(line.msg).startsWith('cluster:crash-loop')));
  console.log(
    `# 18 requests answered with ${retries} retried connections; re-fork waits ${waits.join(', ')} ms`,
  );
  app.child.kill('SIGTERM');
  assert.equal((await app.exited).code, 0);
});

test('past the restart intensity with no worker ready, the primary exits 1 naming the first crash', async () => {
  const port = await freePort();
  const app = spawnFixture('reliability-crashy.js', {
    PORT: String(port),
    CRASH_AFTER: '1',
    CRASH_INTENSITY: '2',
  });
  spawned.push(app);
  await app.waitForLogs(event('worker:ready'), 2, 15_000);
  // Each request kills the worker that answers it: keep asking until the primary gives up.
  const exited = app.exited.then(() => true);
  while (!(await Promise.race([exited, new Promise((resolve) => setTimeout(() => resolve(false), 20))]))) {
    await get(`http://127.0.0.1:${port}/`, { timeoutMs: 2_000 }).catch(() => undefined);
  }
  assert.equal((await app.exited).code, 1);
  const fatal = app.logs.find((line) => String(line.msg).startsWith('cluster:crash-loop'));
  assert.equal(fatal?.code, 'STEWARD_ERR_CRASH_LOOP');
  assert.match(String(fatal?.msg), /exited with code/);
  const forks = app.logs.filter(event('worker:booting')).length;
  assert.ok(forks <= 2 + 3, `${forks} forks: no fork loop`);
});

test('past the restart intensity with a worker still ready, the cluster degrades but keeps serving', async () => {
  const port = await freePort();
  const app = spawnFixture('reliability-crashy.js', {
    PORT: String(port),
    CRASH_AFTER: '1',
    CRASH_INTENSITY: '2',
    CRASH_SPARE: '2',
  });
  spawned.push(app);
  await app.waitForLogs(event('worker:ready'), 2, 15_000);
  const degraded = app.waitForLog(event('worker:crash-loop:degraded'), 20_000, 'worker:crash-loop:degraded');
  let logged = false;
  void degraded.then(() => {
    logged = true;
  });
  while (!logged) await get(`http://127.0.0.1:${port}/`, { timeoutMs: 2_000 }).catch(() => undefined);
  assert.ok(((await degraded).crashes as number) > 2);
  // Worker 2 never crashes: requests keep being answered (a connection handed to a dying worker is retried).
  const deadline = Date.now() + 15_000;
  for (let i = 0; i < 5; i++)
    assert.equal((await getRetrying(`http://127.0.0.1:${port}/`, deadline)).status, 200);
  assert.ok(!app.logs.some((line) => String(line.msg).startsWith('cluster:crash-loop')));
  // A graceful stop; its code is 1 when a worker crashes during the drain, as the last one here may.
  app.child.kill('SIGTERM');
  await app.exited;
  assert.ok(app.logs.some(event('cluster:shutdown:done')));
});

test('a hung sibling: workers see the services as not healthy at once, then it is killed and replaced', async () => {
  const app = await startServicesApp(
    spawned,
    'services-failing.js',
    { statusInterval: 200 },
    {
      FIXTURE_ONLY: 'blocks-loop',
    },
  );
  const first = await app.waitForLog(event('services:running'), 10_000);
  const hungAt = Date.now();
  // Three silent push intervals make the workers' view stale: never "healthy" for a host that stopped.
  const stale = await app.viewWhen((view) => view.stale && !view.healthy, 5_000, 'a stale view');
  assert.equal(stale.host?.pid, first.siblingPid);
  assert.equal((await get(`http://${app.address}/ping`)).status, 503);
  const hung = await app.waitForLog(event('services:unresponsive', { siblingPid: first.siblingPid }), 10_000);
  assert.ok(Date.now() - hungAt < 8_000);
  const crash = await app.waitForLog(event('services:crash', { siblingPid: first.siblingPid }), 5_000);
  assert.equal(crash.signal, 'SIGKILL');
  assert.match(String(hung.silentMs), /^\d+$/);
  const fresh = await app.viewWhen(
    (view) => view.host !== null && view.host.pid !== first.siblingPid && !view.stale,
    10_000,
    'a fresh view from the new sibling',
  );
  assert.equal(fresh.host?.role, 'sibling');
  app.killAll();
});

test('a service that ignores its abort signal: shutdown abandons it after stopTimeout and exits 1', async () => {
  const app = await startServicesApp(
    spawned,
    'services-failing.js',
    { grace: 3_000 },
    {
      FIXTURE_ONLY: 'ignores-stop',
    },
  );
  await app.viewWhen((view) => view.services[0]?.state === 'running', 10_000, 'ignores-stop running');
  const started = Date.now();
  app.child.kill('SIGTERM');
  const exit = await app.exited;
  const took = Date.now() - started;
  assert.equal(exit.code, 1, 'the stop was not clean');
  assert.ok(took < 3_000, `shutdown took ${took} ms (stopTimeout 400 ms, grace 3 s)`);
  const timeout = app.logs.find(event('service:stop:timeout'));
  assert.equal(timeout?.service, 'ignores-stop');
  assert.ok(app.logs.some(event('cluster:shutdown:done', { clean: false, exitCode: 1 })));
});

test('a sibling blocked during shutdown is killed after the grace period; the primary still exits', async () => {
  const app = await startServicesApp(
    spawned,
    'services-failing.js',
    { grace: 1_000, statusInterval: 200 },
    {
      FIXTURE_ONLY: 'blocks-loop',
    },
  );
  const running = await app.waitForLog(event('services:running'), 10_000);
  // Stale once the loop blocked (300 ms after start): from then on the sibling reads no stop request.
  await app.viewWhen((view) => view.stale, 5_000, 'a stale view');
  const started = Date.now();
  app.child.kill('SIGTERM');
  const exit = await app.exited;
  const took = Date.now() - started;
  assert.equal(exit.code, 1);
  assert.ok(took < 6_000, `shutdown took ${took} ms`);
  const killed = app.logs.find(event('services:stop:kill', { siblingPid: running.siblingPid }));
  assert.equal(killed?.timeout, 1_000, 'killed after grace + 1 s, not by the hang detector');
  assert.ok(!app.logs.some(event('services:unresponsive')), 'a stopping sibling is not reported as hung');
});
