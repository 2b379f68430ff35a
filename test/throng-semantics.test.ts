import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { StewardError } from '../lib/errors.js';
import { resolveOptions } from '../lib/options.js';
import { forThrong } from '../lib/throng.js';
import { event, type Spawned, spawnFixture } from './helpers/process.js';

const spawned: Spawned[] = [];
const markerDirs: string[] = [];
after(() => {
  for (const fixture of spawned) fixture.killAll();
  for (const dir of markerDirs) rmSync(dir, { recursive: true, force: true });
});

function start(env: Record<string, string>): Spawned {
  const fixture = spawnFixture('throng-semantics.js', { STEWARD_LOG_LEVEL: 'info', ...env });
  spawned.push(fixture);
  return fixture;
}

function markerDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'steward-cleanup-'));
  markerDirs.push(dir);
  return dir;
}

test('a worker that never listens is ready when its start returns and stays up 60 s without a re-fork', async () => {
  // bootTimeout keeps its default (30 s): a worker waiting for a listen that never comes would be
  // killed twice in this window.
  const fixture = start({ FIXTURE_WORKER: 'background' });
  const ready = await fixture.waitForLogs(event('worker:ready'), 2, 20_000);
  assert.deepEqual(
    ready.map((line) => line.addresses),
    [[], []],
  );
  await fixture.waitForLog(
    (line) => line.msg === 'fixture:uptime' && (line.uptimeMs as number) >= 60_000,
    120_000,
    'a worker up for 60 s',
  );
  assert.equal(fixture.logs.filter(event('worker:booting')).length, 2, 'no worker was forked again');
  assert.equal(fixture.logs.filter(event('worker:crash')).length, 0);
  assert.ok(!fixture.logs.some((line) => JSON.stringify(line).includes('STEWARD_ERR_BOOT_TIMEOUT')));
  fixture.child.kill('SIGTERM');
  // The job loop sees ctx.signal abort, the worker drains and exits 0.
  assert.deepEqual(await fixture.exited, { code: 0, signal: null });
  assert.equal(fixture.logs.filter(event('worker:drain:done')).length, 2);
});

test('under forThrong() a worker that never listens is ready too', async () => {
  const fixture = start({ FIXTURE_WORKER: 'background', FIXTURE_FORM: 'forThrong' });
  await fixture.waitForLogs(event('worker:ready'), 2, 20_000);
  fixture.child.kill('SIGTERM');
  assert.equal((await fixture.exited).code, 0);
  assert.equal(fixture.logs.filter(event('worker:crash')).length, 0);
});

for (const form of ['steward', 'forThrong'] as const) {
  test(`${form}: a worker's own SIGTERM handler (500 ms of cleanup) completes on SIGTERM of the primary`, async () => {
    const dir = markerDir();
    const fixture = start({ FIXTURE_WORKER: 'cleanup', FIXTURE_FORM: form, FIXTURE_MARKER_DIR: dir });
    const ready = await fixture.waitForLogs(event('worker:ready'), 2, 20_000);
    fixture.child.kill('SIGTERM');
    assert.deepEqual(await fixture.exited, { code: 0, signal: null });
    const pids = ready.map((line) => String(line.workerPid)).sort();
    assert.deepEqual(readdirSync(dir).sort(), pids, 'every worker wrote its file');
    for (const pid of pids) assert.equal(readFileSync(join(dir, pid), 'utf8'), 'SIGTERM');
    assert.equal(fixture.logs.filter(event('fixture:cleanup:done')).length, 2);
  });
}

test('Ctrl-C to the process group: each worker runs its cleanup once and the primary exits 0', async () => {
  const dir = markerDir();
  const fixture = start({ FIXTURE_WORKER: 'cleanup', FIXTURE_MARKER_DIR: dir });
  const ready = await fixture.waitForLogs(event('worker:ready'), 2, 20_000);
  process.kill(-fixture.pid, 'SIGINT');
  assert.deepEqual(await fixture.exited, { code: 0, signal: null });
  assert.deepEqual(readdirSync(dir).sort(), ready.map((line) => String(line.workerPid)).sort());
  assert.equal(fixture.logs.filter(event('fixture:cleanup:start')).length, 2, 'each handler ran once');
});

test('a cleanup longer than grace is cut at grace: the primary still ends', async () => {
  const dir = markerDir();
  const fixture = start({
    FIXTURE_WORKER: 'cleanup',
    FIXTURE_MARKER_DIR: dir,
    FIXTURE_CLEANUP_MS: '60000',
    FIXTURE_OPTIONS: JSON.stringify({ grace: 1500 }),
  });
  await fixture.waitForLogs(event('worker:ready'), 2, 20_000);
  const stopAt = Date.now();
  fixture.child.kill('SIGTERM');
  await fixture.exited;
  assert.ok(Date.now() - stopAt < 15_000, 'ended within grace plus the kill margin');
  assert.ok(fixture.logs.some(event('worker:shutdown-handlers:timeout')));
  assert.deepEqual(readdirSync(dir), []);
});

test("WEB_CONCURRENCY='3' (a string) gives 3 workers", async () => {
  const fixture = start({ FIXTURE_WORKER: 'background', WEB_CONCURRENCY: '3' });
  await fixture.waitForLogs(event('worker:ready'), 3, 20_000);
  assert.equal(fixture.logs.find(event('cluster:starting'))?.workers, 3);
  fixture.child.kill('SIGTERM');
  assert.equal((await fixture.exited).code, 0);
  assert.equal(fixture.logs.filter(event('worker:booting')).length, 3);
});

test("throng's legacy call form steward(process.env.WEB_CONCURRENCY, start) runs that many workers", async () => {
  const fixture = start({ FIXTURE_WORKER: 'background', FIXTURE_FORM: 'legacy', WEB_CONCURRENCY: '3' });
  await fixture.waitForLogs(event('worker:ready'), 3, 20_000);
  fixture.child.kill('SIGTERM');
  assert.equal((await fixture.exited).code, 0);
});

test('legacy call forms and numeric strings resolve as throng reads them', () => {
  const start = () => {};
  assert.equal(resolveOptions(3, start).workers, 3);
  assert.equal(resolveOptions('4', start).workers, 4);
  assert.equal(resolveOptions({ count: ' 5 ', worker: start }).workers, 5);
  assert.equal(resolveOptions(start).worker, start);
  assert.equal(forThrong(2, start).count, 2);
  assert.equal(forThrong('6', start).count, 6);
  assert.equal(typeof forThrong(start).worker, 'function');
  assert.ok(forThrong(undefined, start).count >= 1, 'an unset WEB_CONCURRENCY falls back to the default');
});

test('a count string that is not a whole number is refused, naming the option and the value', () => {
  assert.throws(
    () => resolveOptions({ workers: 'many', worker: () => {} }),
    (error: unknown) =>
      error instanceof StewardError &&
      error.code === 'STEWARD_ERR_INVALID_OPTION' &&
      /`workers`/.test(error.message) &&
      /many/.test(error.message),
  );
  assert.throws(() => resolveOptions('2.5', () => {}), /`workers`.*between 1 and 1024/);
});
