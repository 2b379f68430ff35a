import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { get, getJson } from './helpers/http.js';
import { event, isAlive, type LogLine, type Spawned, spawnFixture, until } from './helpers/process.js';

const spawned: Spawned[] = [];
after(() => {
  for (const fixture of spawned) fixture.killAll();
});

function start(options: Record<string, unknown> = {}, services?: string): Spawned {
  const fixture = spawnFixture('throng-app.js', {
    FIXTURE_OPTIONS: JSON.stringify(options),
    ...(services ? { FIXTURE_SERVICES: services } : {}),
  });
  spawned.push(fixture);
  return fixture;
}

async function readyAddress(fixture: Spawned): Promise<string> {
  await fixture.waitForLogs(event('worker:ready'), 2, 15_000);
  const started = await fixture.waitForLog(event('fixture:worker:start'));
  return `127.0.0.1:${started.port as number}`;
}

const pidOf = (line: LogLine) => line.pid as number;

async function pidsServing(address: string, count: number): Promise<Set<number>> {
  const pids = new Set<number>();
  await until(
    async () => {
      const reply = await get(`http://${address}/`);
      assert.equal(reply.status, 200);
      pids.add((JSON.parse(reply.body) as { pid: number }).pid);
      return pids.size === count;
    },
    10_000,
    `answers from ${count} distinct workers`,
  );
  return pids;
}

test('placement primary: throng forks the workers, the services run once in its master', async () => {
  const fixture = start({ placement: 'primary' }, 'throng-services.js');
  const address = await readyAddress(fixture);
  const serving = await pidsServing(address, 2);
  assert.ok(!serving.has(fixture.pid), 'the master never serves HTTP');
  const run = await fixture.waitForLog(event('fixture:service:run'));
  assert.equal(pidOf(run), fixture.pid, 'the service runs in the master');
  const workerStarts = fixture.logs.filter(event('fixture:worker:start')).map(pidOf);
  assert.deepEqual(new Set(workerStarts), serving, 'throng called the start function in each worker');
  fixture.child.kill('SIGTERM');
  assert.deepEqual(await fixture.exited, { code: 0, signal: null });
  assert.equal(fixture.logs.filter(event('fixture:service:run')).length, 1, 'the service ran exactly once');
  assert.ok(fixture.logs.some(event('fixture:service:stopped')), 'the service settled before exit');
  assert.ok(fixture.logs.some(event('cluster:shutdown:done', { clean: true })));
});

test('placement sibling: services run in the forked sibling only; SIGTERM drains and settles all', async () => {
  const fixture = start({ placement: 'sibling' }, 'throng-services.js');
  const address = await readyAddress(fixture);
  const serving = await pidsServing(address, 2);
  const fork = await fixture.waitForLog(event('services:fork'));
  const run = await fixture.waitForLog(event('fixture:service:run'));
  const siblingPid = fork.siblingPid as number;
  assert.equal(pidOf(run), siblingPid, 'the service runs in the sibling');
  assert.notEqual(siblingPid, fixture.pid);
  assert.ok(!serving.has(siblingPid), 'no worker runs the services');
  // The primary pushes the sibling's status to throng's workers: any worker can answer a health check.
  const seen = await until(
    async () => {
      const reply = await getJson<{ healthy: boolean; host: { pid: number }; services: { name: string }[] }>(
        `http://${address}/services`,
      );
      return reply.healthy && reply;
    },
    10_000,
    'a worker reporting healthy services',
  );
  assert.ok(seen);
  assert.equal(seen.host.pid, siblingPid);
  assert.deepEqual(
    seen.services.map((service) => service.name),
    ['ticker'],
  );

  const slow = Array.from({ length: 4 }, () => get(`http://${address}/slow?delay=600`));
  await fixture.waitForLogs(event('fixture:request'), 4, 10_000);
  fixture.child.kill('SIGTERM');
  const replies = await Promise.all(slow);
  assert.deepEqual(
    replies.map((reply) => reply.status),
    [200, 200, 200, 200],
    'in-flight requests complete during the shutdown drain',
  );
  assert.deepEqual(await fixture.exited, { code: 0, signal: null });
  assert.equal(fixture.logs.filter(event('fixture:service:run')).length, 1);
  assert.ok(fixture.logs.some(event('fixture:service:stopped')));
  assert.ok(!isAlive(siblingPid), 'the sibling is gone');
  for (const pid of serving) assert.ok(!isAlive(pid), `worker ${pid} is gone`);
});

test('maxRequests: a worker is drained, throng re-forks it, and no request fails', async () => {
  const fixture = start({ recycle: { maxRequests: 25, minLifetime: 0 }, control: { port: 0 } });
  const address = await readyAddress(fixture);
  const failures: string[] = [];
  let ok = 0;
  const client = async () => {
    for (let i = 0; i < 30; i++) {
      try {
        const reply = await get(`http://${address}/?delay=40`);
        if (reply.status === 200) ok++;
        else failures.push(`status ${reply.status}`);
      } catch (error) {
        failures.push(String(error));
      }
    }
  };
  await Promise.all([client(), client(), client(), client()]);
  assert.deepEqual(failures, [], 'every request succeeded while workers were recycled');
  assert.equal(ok, 120);
  const done = await fixture.waitForLog(event('worker:recycle:done', { reason: 'max-requests' }), 10_000);
  const drained = fixture.logs.find(event('worker:drain:done', { worker: done.worker }));
  assert.ok(drained, 'the retired worker drained before exiting');
  const cut = fixture.logs
    .filter(event('worker:drain:start'))
    .filter((line) => (line.inFlight as number) > 0);
  assert.ok(cut.length > 0, 'at least one worker was retired with requests in flight, and none failed');
  const reforked = await fixture.waitForLog(
    (line) => line.msg === 'worker:ready' && (line.worker as number) > 2,
    10_000,
    'a worker re-forked by throng',
  );
  assert.ok(reforked);
  // The control server sees throng's workers like steward()'s: /status and the recycle counters.
  const control = await fixture.waitForLog(event('control:listening'));
  const base = `http://127.0.0.1:${control.port as number}`;
  const status = await until(
    async () => {
      const document = await getJson<{ workers: { state: string }[] }>(`${base}/status`);
      return document.workers.filter((worker) => worker.state === 'ready').length === 2 && document;
    },
    10_000,
    'two ready workers in /status',
  );
  assert.ok(status);
  const metrics = (await get(`${base}/metrics`)).body;
  const recycled = /steward_worker_recycles_total\{reason="max-requests"\} (\d+)/.exec(metrics);
  assert.ok(recycled && Number(recycled[1]) >= 1, `recycles counted in /metrics:\n${metrics.slice(0, 2000)}`);
  assert.match(metrics, /steward_workers\{state="ready"\} 2/);
  fixture.child.kill('SIGTERM');
  assert.deepEqual(await fixture.exited, { code: 0, signal: null });
});

test('the disconnect function given to the start function recycles its worker gracefully', async () => {
  const fixture = start({ recycle: { minLifetime: 0 } });
  await readyAddress(fixture);
  const victim = fixture.logs.find(event('worker:ready'))!;
  process.kill(victim.workerPid as number, 'SIGUSR2');
  await fixture.waitForLog(event('worker:recycle:done', { worker: victim.worker, reason: 'worker-request' }));
  await fixture.waitForLog((line) => line.msg === 'worker:ready' && (line.worker as number) > 2);
  fixture.child.kill('SIGTERM');
  assert.equal((await fixture.exited).code, 0);
});

test('SIGHUP drains and re-forks every worker, one at a time, while requests keep succeeding', async () => {
  const fixture = start({}, 'throng-services.js');
  const address = await readyAddress(fixture);
  const before = await pidsServing(address, 2);
  process.kill(fixture.pid, 'SIGHUP');
  let failures = 0;
  const done = fixture.waitForLogs(event('worker:recycle:done', { reason: 'rolling-restart' }), 2, 15_000);
  let finished = false;
  void done.then(() => {
    finished = true;
  });
  while (!finished) {
    const reply = await get(`http://${address}/`).catch(() => null);
    if (reply?.status !== 200) failures++;
  }
  await done;
  assert.equal(failures, 0);
  const after = await pidsServing(address, 2);
  for (const pid of before) assert.ok(!after.has(pid), `worker ${pid} was replaced`);
  const starts = fixture.logs.filter(event('worker:recycle:start'));
  const secondStart = starts[1]!.time as number;
  const firstReplacementReady = fixture.logs.find(
    (line) => line.msg === 'worker:ready' && (line.worker as number) === 3,
  )!.time as number;
  assert.ok(secondStart >= firstReplacementReady, 'the second drain waited for the first replacement');
  assert.equal(fixture.logs.filter(event('fixture:service:run')).length, 1, 'the services kept running');
  fixture.child.kill('SIGTERM');
  assert.equal((await fixture.exited).code, 0);
});

test('a worker killed with SIGKILL is re-forked by throng; the services keep running untouched', async () => {
  const fixture = start({ placement: 'sibling' }, 'throng-services.js');
  const address = await readyAddress(fixture);
  await fixture.waitForLog(event('fixture:service:run'));
  const victim = fixture.logs.find(event('worker:ready'))!;
  process.kill(victim.workerPid as number, 'SIGKILL');
  const crash = await fixture.waitForLog(event('worker:crash', { worker: victim.worker }));
  assert.equal(crash.cause, 'crash');
  assert.equal(crash.signal, 'SIGKILL');
  await fixture.waitForLog((line) => line.msg === 'worker:ready' && (line.worker as number) > 2);
  await pidsServing(address, 2);
  assert.equal(fixture.logs.filter(event('services:fork')).length, 1, 'the sibling was never restarted');
  assert.equal(fixture.logs.filter(event('fixture:service:run')).length, 1);
  fixture.child.kill('SIGTERM');
  assert.equal((await fixture.exited).code, 0);
});
