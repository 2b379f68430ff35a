// Each failure of Katello's in-worker event daemon (docs: ../shared seed thread, DESIGN.md) turned into
// a check that it cannot happen here. One app runs through the whole file, in sibling placement.
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { event, isAlive, type Spawned, until } from './helpers/process.js';
import { allRunning, type ServicesApp, startServicesApp, type WorkerView } from './helpers/services.js';

const STATUS_INTERVAL = 500;
const spawned: Spawned[] = [];
const workDir = mkdtempSync(join(tmpdir(), 'steward-katello-cwd-'));
const tempDir = mkdtempSync(join(tmpdir(), 'steward-katello-tmp-'));
let app: ServicesApp;

before(async () => {
  app = await startServicesApp(
    spawned,
    'services-basic.js',
    { statusInterval: STATUS_INTERVAL },
    { FIXTURE_CWD: workDir, TMPDIR: tempDir },
  );
  await until(async () => allRunning(await app.view()), 10_000, 'services running');
});
after(() => {
  for (const fixture of spawned) fixture.killAll();
  rmSync(workDir, { recursive: true, force: true });
  rmSync(tempDir, { recursive: true, force: true });
});

const siblingPid = async () => (await app.view()).host!.pid;
const processed = async () => app.service(await app.view(), 'ticker').processed;

test('the daemon never lands in a worker: the module is imported once, in the sibling, whoever serves requests', async () => {
  // Every worker answers with the same host: the status reaches all of them.
  const seen = new Map<number, WorkerView>();
  await until(
    async () => {
      const view = await app.view();
      seen.set(view.pid, view);
      return seen.size === 2;
    },
    10_000,
    'both workers served a request',
  );
  const servedBy = new Set(seen.keys());
  const hosts = [...seen.values()].map((view) => view.host?.pid);
  assert.equal(new Set(hosts).size, 1, `hosts seen by the workers: ${hosts}`);
  assert.ok([...seen.values()].every((view) => view.healthy));
  const view = await app.view();
  assert.equal(view.host?.role, 'sibling');
  // What a worker sees is never older than one push interval.
  for (let i = 0; i < 5; i++) {
    const sample = await app.view();
    const age = Date.now() - sample.at!;
    assert.ok(age <= STATUS_INTERVAL, `snapshot ${age} ms old`);
    assert.equal(sample.stale, false);
    assert.equal(sample.healthy, true);
  }
  const importers = app.importers();
  assert.equal(importers.length, 1, 'imported exactly once');
  assert.equal(importers[0]!.pid, view.host!.pid);
  assert.equal(importers[0]!.inWorker, false);
  assert.notEqual(importers[0]!.pid, app.pid, 'not in the primary either');
  for (const pid of [...servedBy, ...app.workerPids()]) assert.notEqual(importers[0]!.pid, pid);
});

test('killing every worker with SIGKILL never touches the daemon', async () => {
  const pid = await siblingPid();
  const before = await processed();
  const victims = app.workerPids().filter(isAlive);
  for (const victim of victims) process.kill(victim, 'SIGKILL');
  await app.waitForLogs(event('worker:ready'), 2 + victims.length, 15_000);
  const view = await app.view();
  assert.equal(view.host!.pid, pid);
  assert.equal(app.service(view, 'ticker').restarts, 0);
  await until(async () => (await processed()) > before + 10, 5_000, 'events still flowing');
  assert.equal(app.importers().length, 1);
});

test('failover is immediate: after kill -9 of the sibling the services run again within 1 s, with no request needed', async (t) => {
  const dead = await siblingPid();
  const killedAt = Date.now();
  process.kill(dead, 'SIGKILL');
  const running = await app.waitForLog(
    (line) => line.msg === 'services:running' && line.siblingPid !== dead,
    5_000,
    'services running in a new sibling',
  );
  const downtime = Date.now() - killedAt;
  t.diagnostic(
    `kill -9 of the services sibling → running again: ${running.sinceDeathMs} ms after the primary saw the death, ${downtime} ms after the kill as the test observed it`,
  );
  assert.ok((running.sinceDeathMs as number) < 1_000, `${running.sinceDeathMs} ms`);
  assert.ok(app.logs.some(event('services:crash', { siblingPid: dead })));
  assert.equal(app.importers().length, 2);
});

test('a worker never reports "running" for a dead host, and sees the death within one push interval', async (t) => {
  const dead = await siblingPid();
  await until(async () => allRunning(await app.view()), 5_000, 'running before the kill');
  const views: Array<WorkerView & { seenAt: number }> = [];
  const killedAt = Date.now();
  process.kill(dead, 'SIGKILL');
  await until(
    async () => {
      const view = { ...(await app.view()), seenAt: Date.now() };
      views.push(view);
      return view.host!.pid !== dead && allRunning(view);
    },
    10_000,
    'running again in a new sibling',
    5,
  );
  const firstDown = views.find((view) => view.host!.pid === dead && !allRunning(view));
  assert.ok(firstDown, 'a worker saw the dead host as down');
  assert.ok(firstDown.seenAt - killedAt <= STATUS_INTERVAL, `saw it after ${firstDown.seenAt - killedAt} ms`);
  assert.equal(firstDown.healthy, false);
  assert.ok(firstDown.services.every((service) => service.state === 'backoff'));
  const afterDown = views.slice(views.indexOf(firstDown));
  for (const view of afterDown) {
    if (view.host!.pid === dead)
      assert.ok(!view.services.some((s) => s.state === 'running'), JSON.stringify(view));
  }
  t.diagnostic(`a worker saw the dead sibling as down ${firstDown.seenAt - killedAt} ms after the kill`);
});

// Every process of the app runs in `workDir` with TMPDIR set to `tempDir`: a PID file, lock file or file
// cache would land in one of them.
test('no PID file, lock file or shared cache: the working and temp directories stay empty', async () => {
  assert.deepEqual(readdirSync(workDir), []);
  assert.deepEqual(readdirSync(tempDir), []);
  app.child.kill('SIGTERM');
  assert.equal((await app.exited).code, 0);
  assert.deepEqual(readdirSync(workDir), []);
});
