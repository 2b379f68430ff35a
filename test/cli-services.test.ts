import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { event, isAlive, type Spawned, spawnFixture } from './helpers/process.js';

const cli = fileURLToPath(new URL('../dist/cli/main.js', import.meta.url));
const root = fileURLToPath(new URL('../', import.meta.url));
const execFileAsync = promisify(execFile);

const spawned: Spawned[] = [];
after(() => {
  for (const fixture of spawned) fixture.killAll();
});

test('services <module> runs the services alone in this process, and SIGTERM settles them', async () => {
  const fixture = spawnFixture('../../dist/cli/main.js', {}, [
    'services',
    'test/fixtures/throng-services.js',
  ]);
  spawned.push(fixture);
  const run = await fixture.waitForLog(event('fixture:service:run'), 10_000);
  assert.equal(run.pid, fixture.pid, 'no sibling, no worker: the service runs in the CLI process');
  await fixture.waitForLog(event('services:start', { role: 'standalone' }));
  assert.ok(!fixture.logs.some((line) => line.msg === 'worker:booting'), 'no HTTP worker is forked');
  fixture.child.kill('SIGTERM');
  assert.deepEqual(await fixture.exited, { code: 0, signal: null });
  assert.ok(fixture.logs.some(event('fixture:service:stopped')), 'the service settled before exit');
  assert.ok(!isAlive(fixture.pid));
});

test('services: a missing module or a bad flag value exits 2 naming it', async () => {
  const cases: [string[], RegExp][] = [
    [['services'], /`services` needs the services module/],
    [['services', 'test/fixtures/none.js'], /services module .*none\.js does not exist/],
    [
      ['services', 'test/fixtures/throng-services.js', '--grace', 'soon'],
      /Expected `--grace` to be a duration/,
    ],
    [
      ['services', 'test/fixtures/throng-services.js', '--status-interval', '5'],
      /`--status-interval` to be an integer between 10/,
    ],
  ];
  for (const [args, message] of cases) {
    const failure = await execFileAsync(process.execPath, [cli, ...args], { cwd: root }).then(
      () => assert.fail(`${args.join(' ')} should fail`),
      (error: { code: number; stderr: string }) => error,
    );
    assert.equal(failure.code, 2, failure.stderr);
    assert.match(failure.stderr, message);
    assert.match(failure.stderr, /\[STEWARD_ERR_CLI_USAGE\]/);
  }
});

test('services: a module that is not defineServices(...) exits 1 with the services module error', async () => {
  const failure = await execFileAsync(process.execPath, [cli, 'services', 'test/fixtures/cli-server.js'], {
    cwd: root,
  }).then(
    () => assert.fail('should fail'),
    (error: { code: number; stderr: string }) => error,
  );
  assert.equal(failure.code, 1);
  assert.match(failure.stderr, /must `export default defineServices/);
  assert.match(failure.stderr, /\[STEWARD_ERR_SERVICES_MODULE\]/);
});
