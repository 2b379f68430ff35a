import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { event, freePort, type Spawned, spawnFixture } from './helpers/process.js';

const EX_CONFIG = 78;
const spawned: Spawned[] = [];
after(() => {
  for (const fixture of spawned) fixture.killAll();
});

/** Every way a services module can fail to load, and the code the primary exits with. */
const badModules: { name: string; services: string; env?: Record<string, string>; code: string }[] = [
  { name: 'missing file', services: 'services-does-not-exist.js', code: 'STEWARD_ERR_SERVICES_MODULE' },
  { name: 'throws at import', services: 'services-throws-at-import.js', code: 'STEWARD_ERR_SERVICES_MODULE' },
  {
    name: 'no defineServices export',
    services: 'services-invalid.js',
    env: { FIXTURE_INVALID: 'plain-array' },
    code: 'STEWARD_ERR_SERVICES_MODULE',
  },
  {
    name: 'factory throws',
    services: 'services-invalid.js',
    env: { FIXTURE_INVALID: 'factory-throws' },
    code: 'STEWARD_ERR_SERVICES_MODULE',
  },
  {
    name: 'duplicate names',
    services: 'services-invalid.js',
    env: { FIXTURE_INVALID: 'duplicate-name' },
    code: 'STEWARD_ERR_SERVICE_INVALID',
  },
  {
    name: 'invalid service option',
    services: 'services-invalid.js',
    env: { FIXTURE_INVALID: 'bad-option' },
    code: 'STEWARD_ERR_INVALID_OPTION',
  },
];

for (const placement of ['sibling', 'primary'] as const) {
  for (const bad of badModules) {
    test(`placement ${placement}, services module ${bad.name}: the primary exits ${EX_CONFIG} with ${bad.code}, no re-fork`, async (t) => {
      const started = Date.now();
      const app = spawnFixture('services-app.js', {
        FIXTURE_SERVICES: bad.services,
        FIXTURE_OPTIONS: JSON.stringify({ workers: 2, placement, statusInterval: 400 }),
        PORT: String(await freePort()),
        ...bad.env,
      });
      spawned.push(app);
      const exit = await Promise.race([
        app.exited,
        new Promise<never>((_, reject) =>
          setTimeout(
            () => reject(new Error(`still running: ${JSON.stringify(app.logs.slice(-10))}`)),
            20_000,
          ),
        ),
      ]);
      const ms = Date.now() - started;
      t.diagnostic(`exited ${exit.code} after ${ms} ms`);
      assert.equal(exit.code, EX_CONFIG, app.stderr.join(''));
      const fatal = app.logs.find(event('cluster:config-error'));
      assert.ok(fatal, 'cluster:config-error logged');
      assert.equal(fatal.code, bad.code);
      assert.equal(app.logs.filter(event('services:fork')).length, placement === 'sibling' ? 1 : 0);
      assert.ok(!app.logs.some(event('services:crash')), 'not treated as a crash to retry');
      // Nothing is forked once the primary hosts a module that cannot load.
      if (placement === 'primary') assert.ok(!app.logs.some(event('worker:booting')));
    });
  }
}

test('workers that never become ready (workers: 2): the app exits 1 with STEWARD_ERR_CRASH_LOOP after restart.intensity boot failures in a row', async (t) => {
  const started = Date.now();
  const app = spawnFixture('never-ready-worker.js', { FIXTURE_WORKERS: '2' });
  spawned.push(app);
  const exit = await Promise.race([
    app.exited,
    new Promise<never>((_, reject) =>
      setTimeout(() => reject(new Error(`still running: ${JSON.stringify(app.logs.slice(-10))}`)), 30_000),
    ),
  ]);
  t.diagnostic(`exited ${exit.code} after ${Date.now() - started} ms`);
  assert.equal(exit.code, 1);
  const fatal = app.logs.find((line) => String(line.msg).startsWith('cluster:crash-loop'));
  assert.ok(fatal, 'cluster:crash-loop logged');
  assert.equal(fatal.code, 'STEWARD_ERR_CRASH_LOOP');
  assert.match(String(fatal.msg), /3 workers in a row failed to become ready/);
  const crashes = app.logs.filter(event('worker:crash'));
  assert.equal(crashes.length, 3, 'bounded: intensity (3) boot failures, then the exit');
  assert.ok(crashes.every((line) => line.cause === 'boot_timeout'));
  assert.ok(!app.logs.some(event('worker:ready')));
});
