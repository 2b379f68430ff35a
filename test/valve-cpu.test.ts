import assert from 'node:assert/strict';
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { after, test } from 'node:test';
import { cpuWaitMeter } from '../lib/worker/load-signal.js';
import { createRunsSchema } from './helpers/dispatch-runs.js';
import { addressFromReady, get, getJson } from './helpers/http.js';
import { dropSchema } from './helpers/pg.js';
import { event, freePort, type Spawned, spawnFixture, until } from './helpers/process.js';

// The valve's CPU-wait signal: a worker serving HTTP while other processes take its CPU closes its valve,
// although its own event loop is neither busy nor late enough to say so.

const spawned: Spawned[] = [];
const hogs: ChildProcess[] = [];
const schemas: string[] = [];
after(async () => {
  for (const hog of hogs) hog.kill('SIGKILL');
  for (const fixture of spawned) fixture.killAll();
  for (const schema of schemas) await dropSchema(schema);
});

const linux = existsSync('/proc/thread-self/schedstat');

test('the CPU-wait meter reads the run-queue wait where the kernel has it, and is null where not', () => {
  assert.equal(cpuWaitMeter('/nonexistent/schedstat')(), null, 'no such file: no signal, no error');
  if (!linux) return;
  const meter = cpuWaitMeter();
  const share = meter();
  assert.equal(typeof share, 'number');
  assert.ok((share as number) >= 0, `a share of the interval: ${share}`);
});

test('a worker waiting for a CPU taken by other processes closes its valve, and it opens once they stop', {
  skip: linux ? false : 'needs Linux scheduler statistics (/proc/thread-self/schedstat)',
}, async () => {
  const schema = await createRunsSchema(schemas);
  const controlPort = await freePort();
  // Only the CPU wait can close this valve: no loop delay reaches 10 s, no utilization exceeds 1.
  const fixture = spawnFixture('dispatch-app.js', {
    DISPATCH_SCHEMA: schema,
    PORT: String(await freePort()),
    FIXTURE_OPTIONS: JSON.stringify({
      workers: 2,
      control: { port: controlPort },
      valve: { maxDelay: 10_000, targetUtilization: 1, maxCpuWait: 0.2 },
    }),
  });
  spawned.push(fixture);
  const ready = await fixture.waitForLogs(event('worker:ready'), 2, 30_000);
  const url = `http://${addressFromReady(ready[0]!)}/`;
  const workerPids = ready.map((line) => line.workerPid as number);

  // Both workers share CPU 0 from now on, and one request at a time (2 ms of CPU each) keeps one of them
  // busy: alone on that CPU it hardly waits. A worker that is mostly idle would be scheduled at once on
  // wake-up however busy the CPU is, so the load keeps one of them running all the time.
  for (const pid of workerPids) execFileSync('taskset', ['-a', '-p', '1', String(pid)], { stdio: 'ignore' });
  const stopHttp = new AbortController();
  const http = (async () => {
    while (!stopHttp.signal.aborted)
      await get(`${url}block?ms=2`, { timeoutMs: 5_000 }).catch(() => undefined);
  })();
  try {
    // Other work on the machine (the rest of the suite) may have closed a valve already: start from both
    // open, so the close counted below is the one the hogs cause.
    const statusWorkers = async () =>
      (
        await getJson<{ valve?: { workers: { id: number; state: string; cpuWait: number | null }[] } }>(
          `http://127.0.0.1:${controlPort}/status`,
        )
      ).valve?.workers ?? [];
    const workers = await until(
      async () => {
        const list = await statusWorkers();
        return list.length === 2 &&
          list.every((worker) => typeof worker.cpuWait === 'number' && worker.state === 'open')
          ? list
          : undefined;
      },
      30_000,
      "/status showing both workers' CPU wait, both valves open",
    );
    assert.equal(workers?.length, 2);

    // Three processes that never yield join them on CPU 0: the busy worker then waits for the CPU about
    // three quarters of the time it has work.
    const hogsStarted = Date.now();
    for (let i = 0; i < 3; i++)
      hogs.push(spawn('taskset', ['-c', '0', process.execPath, '-e', 'for (;;);'], { stdio: 'ignore' }));
    const closed = await fixture.waitForLog(
      (line) => line.msg === 'valve:closed' && (line.time as number) >= hogsStarted,
      30_000,
      'valve:closed under CPU contention',
    );
    assert.equal(closed.limit, 1, 'at the floor');
    assert.ok((closed.cpuWait as number) > 0.2, `closed for the CPU wait: ${JSON.stringify(closed)}`);

    // The hogs go and the workers may use every CPU again, so what else runs on the machine does not keep
    // them waiting behind each other on CPU 0.
    for (const hog of hogs.splice(0)) hog.kill('SIGKILL');
    for (const pid of workerPids)
      execFileSync('taskset', ['-a', '-c', '-p', `0-${availableParallelism() - 1}`, String(pid)], {
        stdio: 'ignore',
      });
    const opened = await fixture.waitForLog(
      (line) =>
        line.msg === 'valve:opened' &&
        line.worker === closed.worker &&
        (line.time as number) > (closed.time as number),
      30_000,
      'valve:opened once the CPU is free',
    );
    assert.ok((opened.limit as number) > 1);
  } finally {
    stopHttp.abort();
    await http;
  }
});
