import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { addressFromReady, get } from './helpers/http.js';
import { event, spawnFixture } from './helpers/process.js';

const fixture = spawnFixture('hostile-worker.js');
after(() => fixture.killAll());

test('malformed, huge, spoofed and misdirected IPC from a worker is dropped, logged and harmless', async () => {
  const ready = await fixture.waitForLogs(event('worker:ready'), 2, 15_000);
  const address = addressFromReady(ready[0]!);
  for (let i = 0; i < 4; i++) assert.equal((await get(`http://${address}/attack`)).status, 200);

  const drops = await fixture.waitForLogs(event('ipc:dropped'), 3, 10_000);
  const reasons = new Set(drops.map((line) => line.reason));
  assert.deepEqual([...reasons].sort(), ['malformed', 'unexpected_reply', 'unknown_type']);
  // Rate-limited: 4 attacks × 11 bad messages (and one well-formed line), but at most one line per reason and interval per worker.
  assert.ok(drops.length <= 6, `${drops.length} ipc:dropped lines`);

  // Nothing a worker can send makes the primary drain, stop or replace anything.
  for (let i = 0; i < 20; i++) assert.equal((await get(`http://${address}/`)).status, 200);
  assert.equal(fixture.logs.filter(event('worker:draining')).length, 0);
  assert.equal(fixture.logs.filter(event('worker:booting')).length, 2, 'no worker was replaced');
  assert.equal(fixture.logs.filter(event('worker:dead')).length, 0);

  // A relayed line is written as the worker's own: it cannot speak for another process.
  const workerPids = new Set(ready.map((line) => line.workerPid));
  const relayed = fixture.logs.filter(event('relayed:spoof'));
  assert.equal(relayed.length, 4);
  for (const line of relayed) {
    assert.equal(line.role, 'worker');
    assert.ok(workerPids.has(line.pid), `pid ${line.pid} is a worker's`);
    assert.notEqual(line.worker, 99);
  }

  fixture.child.kill('SIGTERM');
  assert.equal((await fixture.exited).code, 0, 'the primary still shuts down cleanly');
});

test('no log line carries a secret', async () => {
  await fixture.exited;
  const output = fixture.logs.map((line) => JSON.stringify(line)).join('\n');
  assert.ok(fixture.logs.some(event('configured')), 'the secret-bearing lines were logged');
  const errorLine = fixture.logs.find(event('connect:failed'));
  assert.match(
    JSON.stringify(errorLine),
    /postgres:\/\/app:\*\*\*@db\/app failed/,
    'the error is still logged, redacted',
  );
  assert.match(JSON.stringify(errorLine), /"stack":/, 'with its stack');
  const secrets = [
    's3cr3t-amqp',
    's3cr3t-pg',
    's3cr3t-field',
    's3cr3t-nested',
    's3cr3t-kv',
    's3cr3t-err',
    's3cr3t-cause',
    's3cr3t-alone',
    's3cr3t-relayed',
    's3cr3t-relay',
  ];
  for (const secret of secrets) {
    assert.ok(!output.includes(secret), `${secret} leaked into the logs`);
  }
  assert.match(output, /amqp:\/\/app:\*\*\*@broker:5672/);
  assert.match(output, /"msg":"retrying redis:\/\/:\*\*\*@cache:6379"/);
  assert.match(output, /postgres:\/\/app:\*\*\*@db\/app/);
});
