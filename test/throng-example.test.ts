import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { get } from './helpers/http.js';
import { event, freePort, type Spawned, spawnFixture, until } from './helpers/process.js';

const spawned: Spawned[] = [];
after(() => {
  for (const fixture of spawned) fixture.killAll();
});

/** Starts one of the example's scripts and waits until two distinct workers answered. */
async function startExample(script: string, env: Record<string, string> = {}) {
  const port = await freePort();
  const app = spawnFixture(`../../examples/existing-throng-app/${script}`, {
    PORT: String(port),
    WEB_CONCURRENCY: '2',
    ...env,
  });
  spawned.push(app);
  const workers = new Set<string>();
  await until(
    async () => {
      const reply = await get(`http://127.0.0.1:${port}/`);
      assert.equal(reply.status, 200);
      assert.match(reply.body, /^hello from worker \d+ \(pid \d+\)\n$/);
      workers.add(reply.body);
      return workers.size >= 2;
    },
    15_000,
    `${script} answering from two workers`,
  );
  return { app, port };
}

test('before.js: the plain throng application serves from two workers', async () => {
  const { app } = await startExample('before.js');
  assert.ok(app.logs.some((line) => /^primary \d+ starting 2 workers$/.test(String(line.msg))));
  app.child.kill('SIGTERM');
  await app.exited;
});

test('after.js: one changed import runs the same application under steward()', async () => {
  const { app } = await startExample('after.js');
  assert.ok(
    app.logs.some((line) => /^primary \d+ starting 2 workers$/.test(String(line.msg))),
    'master ran',
  );
  const ready = app.logs.filter(event('worker:ready'));
  assert.equal(ready.length, 2, 'steward supervises the two workers');
  app.child.kill('SIGTERM');
  assert.deepEqual(await app.exited, { code: 0, signal: null });
  assert.ok(app.logs.some(event('cluster:shutdown:done', { clean: true })));
});

test('keep-throng.js: throng still forks, the adapter recycles by request count without errors', async () => {
  const { app, port } = await startExample('keep-throng.js', { MAX_REQUESTS: '10' });
  assert.ok(
    app.logs.some((line) => /^primary \d+ starting 2 workers$/.test(String(line.msg))),
    'master ran',
  );
  assert.ok(app.logs.some(event('cluster:starting', { forker: 'throng' })), 'the adapter runs in the master');
  for (let i = 0; i < 40; i++) assert.equal((await get(`http://127.0.0.1:${port}/`)).status, 200);
  await app.waitForLog(event('worker:recycle:done', { reason: 'max-requests' }), 10_000);
  await app.waitForLog((line) => line.msg === 'worker:ready' && (line.worker as number) > 2, 10_000);
  app.child.kill('SIGTERM');
  assert.deepEqual(await app.exited, { code: 0, signal: null });
});
