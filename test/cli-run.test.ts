import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { addressFromReady, get } from './helpers/http.js';
import { event, type Spawned, spawnFixture, until } from './helpers/process.js';

const cli = fileURLToPath(new URL('../dist/cli/main.js', import.meta.url));
const root = fileURLToPath(new URL('../', import.meta.url));
const execFileAsync = promisify(execFile);

/** Runs the built CLI to completion; never rejects, the exit code is part of the result. */
async function runCli(args: string[], env: Record<string, string> = {}) {
  try {
    const { stdout, stderr } = await execFileAsync(process.execPath, [cli, ...args], {
      cwd: root,
      env: { ...process.env, ...env },
      timeout: 20_000,
    });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code: number; stdout: string; stderr: string };
    return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
  }
}

const spawned: Spawned[] = [];
after(() => {
  for (const fixture of spawned) fixture.killAll();
});

test('--help of every command prints its usage and exits 0', async () => {
  const top = await runCli(['--help']);
  assert.equal(top.code, 0);
  assert.match(top.stdout, /Usage: cluster-steward <command>/);
  for (const command of ['run', 'services', 'status']) {
    const help = await runCli([command, '--help']);
    assert.equal(help.code, 0, help.stderr);
    assert.match(help.stdout, new RegExp(`Usage: cluster-steward ${command}`));
  }
  assert.match((await runCli(['run', '-h'])).stdout, /--max-requests N/);
});

test('bad command lines exit 2 with one clear STEWARD_ERR_CLI_USAGE message', async () => {
  const cases: [string[], RegExp][] = [
    [[], /A command is needed/],
    [['serve'], /Unknown command 'serve'/],
    [
      ['run', 'test/fixtures/cli-server.js', '--wokers', '2'],
      /Unknown flag `--wokers`\. Did you mean `--workers`\?/,
    ],
    [['run', 'test/fixtures/cli-server.js', '--workers'], /`--workers` needs a value/],
    [
      ['run', 'test/fixtures/cli-server.js', '--workers', '0'],
      /Expected `--workers` to be an integer between 1 and 1024, got `0`/,
    ],
    [
      ['run', 'test/fixtures/cli-server.js', '--max-requests', 'many'],
      /Expected `--max-requests` to be an integer >= 1, got `'many'`/,
    ],
    [['run', 'test/fixtures/cli-server.js', '--max-rss', 'lots'], /Expected `--max-rss` to be a size/],
    [['run', 'test/fixtures/cli-server.js', '--max-age', '6 hours'], /Expected `--max-age` to be a duration/],
    [
      ['run', 'test/fixtures/cli-server.js', '--placement', 'primary'],
      /`--placement` was given without `--services`/,
    ],
    [
      ['run', 'test/fixtures/cli-server.js', '--control-host', '0.0.0.0'],
      /`--control-host` needs `--control-port`/,
    ],
    [['run', 'test/fixtures/cli-server.js', '--log-level', 'loud'], /`--log-level` to be one of/],
    [['run'], /`run` needs the server module/],
    [['run', 'test/fixtures/no-such-server.js'], /server module .*no-such-server\.js does not exist/],
    [['run', 'test/fixtures/cli-server.js', 'extra.js'], /Unexpected argument 'extra\.js'/],
    [['status', '--port', 'http'], /Expected `--port` to be an integer between 1 and 65535/],
    [['status', '--json=yes'], /`--json` takes no value/],
  ];
  for (const [args, message] of cases) {
    const result = await runCli(args);
    assert.equal(result.code, 2, `exit code of ${args.join(' ')}: ${result.stderr}`);
    assert.match(result.stderr, message, `stderr of ${args.join(' ')}`);
    assert.match(result.stderr, /\[STEWARD_ERR_CLI_USAGE\]/);
    assert.equal(result.stdout, '', 'nothing on stdout');
  }
});

test('run: workers serve, flags reach every process, status prints the cluster, SIGTERM exits 0', async () => {
  const fixture = spawnFixture('../../dist/cli/main.js', {}, [
    'run',
    'test/fixtures/cli-server.js',
    '--workers',
    '2',
    '--services',
    'test/fixtures/throng-services.js',
    '--max-requests',
    '15',
    '--min-lifetime',
    '0',
    '--control-port',
    '0',
    '--grace',
    '5s',
  ]);
  spawned.push(fixture);
  const ready = await fixture.waitForLogs(event('worker:ready'), 2, 15_000);
  const address = addressFromReady(ready[0]!);
  const pids = new Set<number>();
  for (let i = 0; i < 40; i++) {
    const reply = await get(`http://${address}/?delay=5`);
    assert.equal(reply.status, 200);
    pids.add((JSON.parse(reply.body) as { pid: number }).pid);
  }
  assert.ok(pids.size >= 2, 'answers from more than one worker');
  assert.ok(!pids.has(fixture.pid), 'the primary never serves HTTP');
  // --max-requests reached the recycler, and every re-run of the CLI in a worker booted the same way.
  await fixture.waitForLog(event('worker:recycle:done', { reason: 'max-requests' }), 10_000);
  const control = await fixture.waitForLog(event('control:listening'));
  await fixture.waitForLog(event('fixture:service:run'));

  const port = String(control.port);
  const json = await until(
    async () => {
      const result = await runCli(['status', '--port', port, '--json']);
      const document = JSON.parse(result.stdout) as {
        pid: number;
        workers: unknown[];
        services: { services: { state: string }[] };
      };
      return document.workers.length === 2 && document.services?.services[0]?.state === 'running' && document;
    },
    10_000,
    'status --json with two workers and a running service',
  );
  assert.ok(json);
  assert.equal(json.pid, fixture.pid);

  const table = await runCli(['status', '-p', port]);
  assert.equal(table.code, 0, table.stderr);
  assert.match(table.stdout, new RegExp(`Primary pid ${fixture.pid}, up `));
  assert.match(
    table.stdout,
    /Workers \(2\)\n {2}ID +PID +STATE +AGE +REQUESTS +IN-FLIGHT +RSS +HEAP +HEARTBEAT/,
  );
  assert.match(table.stdout, /\n {2}\d+ +\d+ +ready +/);
  assert.match(table.stdout, /Services \(sibling pid \d+, reported .* ago\)/);
  assert.match(table.stdout, /\n {2}ticker +running +/);

  fixture.child.kill('SIGTERM');
  assert.deepEqual(await fixture.exited, { code: 0, signal: null });
  const gone = await runCli(['status', '--port', port]);
  assert.equal(gone.code, 1);
  assert.match(gone.stderr, /No control server at 127\.0\.0\.1:\d+ \(connection refused\)/);
});

test('status with a token: refused without it, answered with it', async () => {
  const token = 'a-control-token-of-some-length';
  const fixture = spawnFixture('../../dist/cli/main.js', { STEWARD_CONTROL_TOKEN: token }, [
    'run',
    'test/fixtures/cli-server.js',
    '--workers',
    '1',
    '--control-port',
    '0',
  ]);
  spawned.push(fixture);
  await fixture.waitForLogs(event('worker:ready'), 1, 15_000);
  const port = String((await fixture.waitForLog(event('control:listening'))).port);
  const refused = await runCli(['status', '--port', port], { STEWARD_CONTROL_TOKEN: '' });
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /wants a valid bearer token.*\[STEWARD_ERR_CONTROL_AUTH\]/);
  const answered = await runCli(['status', '--port', port, '--token', token]);
  assert.equal(answered.code, 0, answered.stderr);
  assert.match(answered.stdout, /Workers \(1\)/);
  assert.match(answered.stdout, /Services: none reported/);
  fixture.child.kill('SIGTERM');
  assert.equal((await fixture.exited).code, 0);
});

test('run: a server module without a start function ends in a crash loop that names it (exit 1)', async () => {
  const fixture = spawnFixture('../../dist/cli/main.js', {}, [
    'run',
    'test/fixtures/throng-services.js',
    '--workers',
    '1',
  ]);
  spawned.push(fixture);
  assert.equal((await fixture.exited).code, 1);
  const fatal = fixture.logs.find((line) => String(line.msg).startsWith('cluster:crash-loop'));
  assert.ok(fatal, 'one fatal line');
  assert.match(String((fatal.err as { message: string }).message), /exports no start function/);
});
