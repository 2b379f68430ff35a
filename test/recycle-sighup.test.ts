import assert from 'node:assert/strict';
import { rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { event, isAlive } from './helpers/process.js';
import {
  get,
  maxConcurrentRecycles,
  minReadyWorkers,
  recycleTimeline,
  startRecycleCluster,
} from './helpers/recycle-http.js';

/** Sends requests one after another until stopped; counts answers and failures. */
function keepRequesting(port: number) {
  const tally = { ok: 0, failed: [] as string[], pids: new Set<number>() };
  let running = true;
  const done = (async () => {
    while (running) {
      try {
        const answer = await get(port);
        if (answer.status === 200) tally.ok++;
        else tally.failed.push(`status ${answer.status}`);
        tally.pids.add(answer.pid);
      } catch (error) {
        tally.failed.push(String(error));
      }
    }
  })();
  return {
    tally,
    stop: async () => {
      running = false;
      await done;
      return tally;
    },
  };
}

test('SIGHUP replaces every worker, one at a time, while every request is answered', async (t) => {
  const { cluster, port, readyPids } = await startRecycleCluster(t, {});
  const original = readyPids();
  const traffic = keepRequesting(port);
  process.kill(cluster.pid, 'SIGHUP');
  const summary = await cluster.waitForLog(event('cluster:rolling-restart:done'), 30_000);
  const tally = await traffic.stop();
  assert.deepEqual(
    { recycled: summary.recycled, aborted: summary.aborted, skipped: summary.skipped },
    {
      recycled: 2,
      aborted: 0,
      skipped: 0,
    },
  );
  assert.deepEqual(tally.failed, []);
  assert.ok(tally.ok > 0);
  const done = cluster.logs.filter(event('worker:recycle:done'));
  assert.deepEqual(
    done.map((line) => line.reason),
    ['rolling-restart', 'rolling-restart'],
  );
  assert.deepEqual(done.map((line) => line.workerPid).sort(), [...original].sort());
  assert.equal(maxConcurrentRecycles(cluster), 1);
  const [first, second] = recycleTimeline(cluster);
  assert.ok(first?.startsWith('start') && second?.startsWith('done'), 'the second waits for the first');
  const now = await get(port);
  assert.ok(!original.includes(now.pid));
  for (const pid of original) assert.equal(isAlive(pid), false, `old worker ${pid} exited`);
  assert.equal(minReadyWorkers(cluster, 2), 2, 'never fewer ready workers than configured');
});

test('one budget across triggers: with concurrency 2, a rolling restart and a worker request share it', async (t) => {
  const { cluster, port, readyPids } = await startRecycleCluster(t, {
    workers: 3,
    recycle: { concurrency: 2 },
  });
  const original = readyPids();
  process.kill(cluster.pid, 'SIGHUP');
  await cluster.waitForLog(event('worker:recycle:start'), 10_000);
  // A worker asking for itself while the rolling restart runs: queued once, never twice.
  const asking = await get(port, '/disconnect');
  await cluster.waitForLog(event('cluster:rolling-restart:done'), 30_000);
  await cluster.waitForLog(
    (line) => line.msg === 'worker:recycle:done' && line.workerPid === asking.pid,
    30_000,
    'the asking worker retired',
  );
  const done = cluster.logs.filter(event('worker:recycle:done'));
  const retiredOriginals = done.filter((line) => original.includes(line.workerPid as number));
  assert.equal(retiredOriginals.length, 3, 'each original worker retired exactly once');
  assert.equal(maxConcurrentRecycles(cluster), 2, 'two at a time, never three');
  assert.equal(minReadyWorkers(cluster, 3), 3);
});

test('a replacement that fails to boot aborts the recycle: the old worker keeps serving, then backs off', async (t) => {
  const marker = join(tmpdir(), `steward-recycle-marker-${process.pid}-${Date.now()}`);
  t.after(() => rmSync(marker, { force: true }));
  const { cluster, port, readyPids } = await startRecycleCluster(
    t,
    { restart: { initialDelay: 300, maxDelay: 2_000, jitter: 0 } },
    { BOOT_FAIL_MARKER: marker },
  );
  const original = readyPids();
  writeFileSync(marker, 'new code that cannot boot');
  process.kill(cluster.pid, 'SIGHUP');
  const summary = await cluster.waitForLog(event('cluster:rolling-restart:done'), 30_000);
  assert.equal(summary.aborted, 2);
  assert.equal(summary.recycled, 0);
  const aborted = cluster.logs.filter(event('worker:recycle:aborted'));
  assert.equal(aborted.length, 2);
  assert.match(String((aborted[0]!.error as { message: string }).message), /boot refused/);
  // Jittered exponential backoff between attempts (jitter 0 here: exactly 300 ms, then 600 ms).
  assert.deepEqual(
    aborted.map((line) => line.retryIn),
    [300, 600],
  );
  assert.ok((aborted[1]!.time as number) - (aborted[0]!.time as number) >= 300);
  assert.equal(cluster.logs.filter(event('worker:recycle:done')).length, 0);
  for (const pid of original) assert.equal(isAlive(pid), true, `old worker ${pid} still runs`);
  const answers = await Promise.all([get(port), get(port), get(port), get(port)]);
  for (const answer of answers) {
    assert.equal(answer.status, 200);
    assert.ok(original.includes(answer.pid), 'answered by an original worker');
  }

  rmSync(marker);
  process.kill(cluster.pid, 'SIGHUP');
  await cluster.waitForLogs(event('cluster:rolling-restart:done'), 2, 30_000);
  const last = cluster.logs.filter(event('cluster:rolling-restart:done'))[1]!;
  assert.equal(last.recycled, 2);
  assert.ok(!original.includes((await get(port)).pid));
});

test('a replacement that never gets ready is killed at bootTimeout and the recycle aborted', async (t) => {
  const marker = join(tmpdir(), `steward-recycle-hang-${process.pid}-${Date.now()}`);
  t.after(() => rmSync(marker, { force: true }));
  const { cluster, port, readyPids } = await startRecycleCluster(
    t,
    { workers: 1, bootTimeout: 1_500, restart: { initialDelay: 60_000, maxDelay: 60_000 } },
    { BOOT_HANG_MARKER: marker },
  );
  const [original] = readyPids();
  writeFileSync(marker, 'boot hangs');
  process.kill(cluster.pid, 'SIGHUP');
  const aborted = await cluster.waitForLog(event('worker:recycle:aborted'), 20_000);
  assert.equal((aborted.error as { code: string }).code, 'STEWARD_ERR_BOOT_TIMEOUT');
  assert.equal(aborted.signal, 'SIGKILL');
  const answer = await get(port);
  assert.equal(answer.pid, original, 'the old worker still serves');
  assert.equal(cluster.logs.filter(event('worker:draining')).length, 0);
});

test('past `lifetime` (no more forks) a SIGHUP skips every recycle and the workers keep serving', async (t) => {
  const { cluster, port, readyPids } = await startRecycleCluster(t, { lifetime: 1 });
  const original = readyPids();
  process.kill(cluster.pid, 'SIGHUP');
  const summary = await cluster.waitForLog(event('cluster:rolling-restart:done'), 30_000);
  assert.deepEqual({ recycled: summary.recycled, skipped: summary.skipped }, { recycled: 0, skipped: 2 });
  assert.equal(cluster.logs.filter(event('worker:recycle:skipped')).length, 2);
  assert.equal(cluster.logs.filter(event('worker:booting')).length, 2, 'no replacement was forked');
  assert.equal((await get(port)).status, 200);
  assert.deepEqual(readyPids(), original);
});
