import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import pino from 'pino';
import { EventLoopWatchdog } from '../lib/common/event-loop-watchdog.js';
import { hostProblem, NOT_RUNNING_PROBLEM_MS } from '../lib/services/host-problem.js';
import { ServiceRecord } from '../lib/services/service-record.js';
import { get } from './helpers/http.js';
import { event, type Spawned, spawnFixture, until } from './helpers/process.js';
import { matching, scrape, total } from './helpers/prometheus.js';
import { allRunning, type ServicesApp, startServicesApp } from './helpers/services.js';

/** The rule every test here holds the cluster to: health says so within this long. */
const DETECTION_BUDGET_MS = 10_000;
const spawned: Spawned[] = [];
after(() => {
  for (const fixture of spawned) fixture.killAll();
});

interface Health {
  ping: number;
  healthz: number;
  problems: string[];
}

async function health(app: ServicesApp, controlPort: number): Promise<Health> {
  const [ping, healthz] = await Promise.all([
    get(`http://${app.address}/ping`, { timeoutMs: 15_000 }),
    get(`http://127.0.0.1:${controlPort}/healthz`, { timeoutMs: 15_000 }),
  ]);
  return {
    ping: ping.status,
    healthz: healthz.status,
    problems: (JSON.parse(healthz.body) as { problems: string[] }).problems,
  };
}

/** `steward_service_up` per service, from the control server's scrape. */
async function serviceUp(controlPort: number): Promise<Record<string, number>> {
  const up: Record<string, number> = {};
  for (const sample of matching(await scrape(controlPort), 'steward_service_up'))
    up[sample.labels.service!] = sample.value;
  return up;
}

/**
 * Polls ping, /healthz and the metrics side by side from `since` until each one held its condition once,
 * and returns when each was first seen (ms after `since`); rejects after `timeoutMs`.
 */
async function firstSeen(
  since: number,
  timeoutMs: number,
  checks: Record<string, () => Promise<boolean>>,
): Promise<Record<string, number>> {
  const seen: Record<string, number> = {};
  await Promise.all(
    Object.entries(checks).map(([name, check]) =>
      until(
        async () => {
          if (await check()) seen[name] = Date.now() - since;
          return seen[name] !== undefined;
        },
        timeoutMs - (Date.now() - since),
        name,
        50,
      ),
    ),
  );
  return seen;
}

test('hostProblem: failed, out of running for more than 5 s, stalled with work, a blocked loop; nothing for slow but legitimate states', () => {
  const now = 1_000_000;
  const view = (state: string, notRunningFor: number | null, stalled = false, hasWork = false) => ({
    status: { state },
    notRunningSince: notRunningFor === null ? null : now - notRunningFor,
    stalled,
    hasWork,
  });
  assert.equal(hostProblem(view('running', null), null, now), null);
  assert.equal(hostProblem(view('standby', null), null, now), null);
  assert.equal(hostProblem(view('backoff', NOT_RUNNING_PROBLEM_MS), null, now), null, 'a short restart');
  assert.equal(hostProblem(view('starting', 200), null, now), null);
  assert.match(
    hostProblem(view('backoff', NOT_RUNNING_PROBLEM_MS + 1), null, now)!,
    /^not running for more than 5 s$/,
  );
  assert.match(hostProblem(view('starting', 60_000), null, now)!, /not running/);
  assert.match(hostProblem(view('failed', 60_000), null, now)!, /^failed: /);
  assert.equal(
    hostProblem(view('running', null, true, false), null, now),
    null,
    'stalled, but nothing to do',
  );
  assert.match(hostProblem(view('running', null, true, true), null, now)!, /^stalled: /);
  assert.equal(
    hostProblem(view('running', null), 'the event loop of the primary was blocked for 2.0 s', now),
    'the event loop of the primary was blocked for 2.0 s',
  );
  // Stable texts: the same cause later gives the same problem, so it is logged once.
  assert.equal(
    hostProblem(view('backoff', 6_000), null, now),
    hostProblem(view('starting', 50_000), null, now),
  );
});

test('ServiceRecord: the host problem and the reported one combine; a new run starts without the reported one', () => {
  const record = new ServiceRecord('combined', false);
  const logger = pino({ level: 'silent' });
  const ctx = record.createContext(new AbortController().signal, logger);
  ctx.setProblem('reconnecting every 150 ms');
  assert.equal(record.status.problem, 'reconnecting every 150 ms');
  record.setHostProblem('not running for more than 5 s');
  assert.equal(record.status.problem, 'not running for more than 5 s; reconnecting every 150 ms');
  record.createContext(new AbortController().signal, logger);
  assert.equal(record.status.problem, 'not running for more than 5 s');
  record.setHostProblem(null);
  assert.equal(record.status.problem, null);
  assert.equal(record.notRunningSince !== null, true, 'a new record is not running yet');
  record.setState('running');
  assert.equal(record.notRunningSince, null);
  record.setState('backoff');
  const leftAt = record.notRunningSince;
  assert.ok(leftAt !== null);
  record.setState('starting');
  assert.equal(record.notRunningSince, leftAt, 'backoff → starting is one stretch out of running');
  record.dispose();
});

test('EventLoopWatchdog: a block of 1 s or more is logged once and held after it ends; short delays are not', async () => {
  const lines: Array<Record<string, unknown>> = [];
  const logger = pino({ level: 'info' }, { write: (line: string) => lines.push(JSON.parse(line)) });
  const watchdog = new EventLoopWatchdog({
    logger,
    processName: 'test process',
    hold: 300,
    tick: 20,
  }).start();
  const changes: Array<string | null> = [];
  watchdog.on('change', (problem) => changes.push(problem));
  // The watchdog's timers never keep a process alive: this one keeps the test's alive while it waits.
  const keepAlive = setInterval(() => {}, 1_000);
  try {
    // A 200 ms busy loop: slow, not blocked.
    let until = Date.now() + 200;
    while (Date.now() < until) {}
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(watchdog.problem, null);
    until = Date.now() + 1_200;
    while (Date.now() < until) {}
    const raised = await new Promise<string | null>((resolve) => watchdog.once('change', resolve));
    assert.match(raised!, /^the event loop of the test process was blocked for \d+\.\d s$/);
    assert.equal(watchdog.problem, raised);
    const cleared = await new Promise<string | null>((resolve) => watchdog.once('change', resolve));
    assert.equal(cleared, null);
    assert.deepEqual(changes, [raised, null]);
    const blocked = lines.filter((line) => line.msg === 'event-loop:blocked');
    assert.equal(blocked.length, 1);
    assert.ok((blocked[0]!.blockedMs as number) >= 1_000);
    assert.equal(lines.filter((line) => line.msg === 'event-loop:recovered').length, 1);
  } finally {
    clearInterval(keepAlive);
    watchdog.stop();
  }
});

async function controlPortOf(app: Spawned): Promise<number> {
  return (await app.waitForLog(event('control:listening'), 15_000)).port as number;
}

test('a stopped (SIGSTOP) sibling: stale within 10 s on ping, /healthz, /status and steward_service_up; healthy again after SIGCONT', async (t) => {
  // The default statusInterval (2 s): the budget must hold with the defaults.
  const app = await startServicesApp(spawned, 'services-basic.js', {
    statusInterval: 2_000,
    control: { port: 0 },
  });
  const control = await controlPortOf(app);
  await until(async () => allRunning(await app.view()), 15_000, 'services running');
  await until(async () => (await health(app, control)).healthz === 200, 15_000, 'healthy');
  const sibling = (await app.view()).host!.pid;
  const stoppedAt = Date.now();
  process.kill(sibling, 'SIGSTOP');
  try {
    const seen = await firstSeen(stoppedAt, DETECTION_BUDGET_MS, {
      ping: async () => (await get(`http://${app.address}/ping`)).status === 503,
      healthz: async () => {
        const reply = await get(`http://127.0.0.1:${control}/healthz`);
        return reply.status === 503 && /sibling \(pid \d+\) sent no status for/.test(reply.body);
      },
      status: async () => {
        const reply = await get(`http://127.0.0.1:${control}/status`);
        const body = JSON.parse(reply.body) as { services: { stale?: { silentMs: number } } };
        return (body.services.stale?.silentMs ?? 0) > 6_000;
      },
      metrics: async () => (await serviceUp(control)).ticker === 0,
    });
    t.diagnostic(`seen after (ms): ${JSON.stringify(seen)}`);
    const stale = app.logs.filter(event('services:stale', { siblingPid: sibling }));
    assert.equal(stale.length, 1, 'one warn line');
    assert.equal(stale[0]!.level, 40);
  } finally {
    process.kill(sibling, 'SIGCONT');
  }
  await app.waitForLog(event('services:stale:cleared', { siblingPid: sibling }), 10_000);
  // The resumed sibling saw its own loop stand still for the whole stop: held as a problem for 10 s more.
  const resumed = await app.waitForLog(event('event-loop:blocked', { pid: sibling }), 10_000);
  assert.ok((resumed.blockedMs as number) >= 5_000, `blockedMs ${resumed.blockedMs}`);
  await until(
    async () => (await health(app, control)).problems.some((p) => /services sibling was blocked/.test(p)),
    5_000,
    'the sibling reports its stop',
  );
  await until(async () => (await health(app, control)).healthz === 200, 20_000, 'healthy again');
  assert.equal((await serviceUp(control)).ticker, 1);
  // Resumed, not replaced: the sibling was never killed as hung.
  assert.equal((await app.view()).host!.pid, sibling);
  assert.ok(!app.logs.some(event('services:unresponsive')));
  app.child.kill('SIGTERM');
  assert.equal((await app.exited).code, 0);
});

test("placement 'primary', a service blocks the event loop for 4 s: logged once, health and steward_service_up say so, the other service goes on", async (t) => {
  const blockFile = join(tmpdir(), `steward-block-${process.pid}-${Date.now()}`);
  const app = await startServicesApp(
    spawned,
    'services-blocking.js',
    { placement: 'primary', statusInterval: 500, control: { port: 0 } },
    { FIXTURE_BLOCK_FILE: blockFile, FIXTURE_BLOCK_MS: '4000' },
  );
  const control = await controlPortOf(app);
  await until(async () => (await health(app, control)).healthz === 200, 15_000, 'healthy');
  const processedBefore = app.service(await app.view(), 'ticker').processed;
  const blockedAt = Date.now();
  writeFileSync(blockFile, '');
  await app.waitForLog(event('fixture:block:start'), 5_000);
  const seen = await firstSeen(blockedAt, DETECTION_BUDGET_MS, {
    ping: async () => (await get(`http://${app.address}/ping`)).status === 503,
    healthz: async () => {
      const reply = await get(`http://127.0.0.1:${control}/healthz`);
      return reply.status === 503 && /event loop of the primary was blocked for [3-9]\.\d s/.test(reply.body);
    },
    metrics: async () => (await serviceUp(control)).ticker === 0,
  });
  t.diagnostic(`seen after (ms, from the block's start): ${JSON.stringify(seen)}`);
  const blocked = await app.waitForLog(event('event-loop:blocked'), 1_000);
  assert.ok((blocked.blockedMs as number) >= 3_000, `blockedMs ${blocked.blockedMs}`);
  assert.equal(app.logs.filter(event('event-loop:blocked')).length, 1, 'one line per block');
  const problems = app.logs.filter(event('service:problem'));
  assert.deepEqual(
    problems.map((line) => line.service).sort(),
    ['blocker', 'ticker'],
    'one line per service',
  );
  assert.ok(problems.every((line) => line.level === 40));
  // The work behind the block proceeds: the ticker handles events again.
  await until(
    async () => app.service(await app.view(), 'ticker').processed > processedBefore + 20,
    10_000,
    'ticker handles events after the block',
  );
  // Held 10 s after the block, then healthy again without a restart.
  await app.waitForLogs(event('service:problem:cleared'), 2, 20_000);
  await until(async () => (await health(app, control)).healthz === 200, 10_000, 'healthy again');
  assert.equal((await serviceUp(control)).ticker, 1);
  app.child.kill('SIGTERM');
  assert.equal((await app.exited).code, 0);
});

test('a sibling killed with SIGKILL and re-forked counts in steward_service_restarts_total', async (t) => {
  const app = await startServicesApp(spawned, 'services-basic.js', {
    statusInterval: 500,
    control: { port: 0 },
  });
  const control = await controlPortOf(app);
  await until(async () => allRunning(await app.view()), 15_000, 'services running');
  const before = total(await scrape(control), 'steward_service_restarts_total', { service: 'ticker' });
  const sibling = (await app.view()).host!.pid;
  const killedAt = Date.now();
  process.kill(sibling, 'SIGKILL');
  await until(
    async () =>
      total(await scrape(control), 'steward_service_restarts_total', { service: 'ticker' }) === before + 1,
    DETECTION_BUDGET_MS,
    'restart counted',
  );
  t.diagnostic(`restart counted ${Date.now() - killedAt} ms after the kill`);
  const view = await app.viewWhen((current) => current.host?.pid !== sibling && allRunning(current), 10_000);
  assert.notEqual(view.host!.pid, sibling);
  // Counted once, also after the new sibling reports: the idle service too.
  const samples = await scrape(control);
  assert.equal(total(samples, 'steward_service_restarts_total', { service: 'ticker' }), before + 1);
  assert.equal(total(samples, 'steward_service_restarts_total', { service: 'idle' }), 1);
  app.child.kill('SIGTERM');
  assert.equal((await app.exited).code, 0);
});

test('a sibling that keeps dying before it reports: the primary reports its services within 10 s', async (t) => {
  const exitFile = join(tmpdir(), `steward-exit-${process.pid}-${Date.now()}`);
  const app = await startServicesApp(
    spawned,
    'services-exits.js',
    // Below the restart intensity: the services stay in backoff, never `failed`, the whole time.
    {
      statusInterval: 500,
      control: { port: 0 },
      restart: { initialDelay: 300, maxDelay: 1_000, intensity: 100, period: 60_000 },
    },
    { FIXTURE_EXIT_FILE: exitFile },
  );
  const control = await controlPortOf(app);
  await until(async () => (await health(app, control)).healthz === 200, 15_000, 'healthy');
  const sibling = (await app.view()).host!.pid;
  writeFileSync(exitFile, '');
  const killedAt = Date.now();
  process.kill(sibling, 'SIGKILL');
  const seen = await firstSeen(killedAt, DETECTION_BUDGET_MS, {
    ping: async () => (await get(`http://${app.address}/ping`)).status === 503,
    healthz: async () => {
      const { healthz, problems } = await health(app, control);
      return healthz === 503 && problems.includes('service ticker: not running for more than 5 s');
    },
    metrics: async () => (await serviceUp(control)).ticker === 0,
  });
  t.diagnostic(
    `seen after (ms): ${JSON.stringify(seen)}; ${JSON.stringify((await health(app, control)).problems)}`,
  );
  assert.ok(seen.healthz! > 5_000, 'not before the 5 s a restart may take');
  assert.ok(app.logs.filter(event('services:crash')).length >= 2, 'the new siblings die too');
  app.killAll();
});

test('scrapes during rolling restarts: workers retiring mid-scrape are no scrape errors', async (t) => {
  const fixture = spawnFixture('metrics-cluster.js', {
    FIXTURE_OPTIONS: JSON.stringify({ workers: 2, control: { port: 0 } }),
  });
  spawned.push(fixture);
  const control = await controlPortOf(fixture);
  await fixture.waitForLogs(event('worker:ready'), 2, 20_000);
  let scrapes = 0;
  let scraping = true;
  const loop = (async () => {
    while (scraping) {
      await scrape(control);
      scrapes++;
    }
  })();
  for (let round = 1; round <= 3; round++) {
    process.kill(fixture.pid, 'SIGHUP');
    await fixture.waitForLogs(event('cluster:rolling-restart:done'), round, 30_000);
  }
  scraping = false;
  await loop;
  const retired = fixture.logs.filter(event('metrics:collect:retired')).length;
  t.diagnostic(`${scrapes} scrapes over 6 recycles; ${retired} collects met a retiring worker`);
  const samples = await scrape(control);
  assert.equal(total(samples, 'steward_scrape_errors_total', { role: 'worker' }), 0);
  assert.ok(!fixture.logs.some(event('metrics:collect:failed')));
  assert.ok(scrapes > 6);
  fixture.child.kill('SIGTERM');
  assert.equal((await fixture.exited).code, 0);
});
