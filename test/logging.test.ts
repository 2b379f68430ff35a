import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { loadPino } from '../lib/common/load-pino.js';
import { levelThresholdOf } from '../lib/common/log-level.js';
import { createLogger, linesOfProcess } from '../lib/common/logger.js';
import { formatPrettyLine, logFormat } from '../lib/common/pretty.js';
import { get } from './helpers/http.js';
import { event, freePort, type Spawned, spawnFixture, until } from './helpers/process.js';

const spawned: Spawned[] = [];
const dirs: string[] = [];
after(() => {
  for (const fixture of spawned) fixture.killAll();
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

/**
 * The keys of every object in a JSON text that occur more than once in that object. JSON.parse keeps
 * the last one silently; Elasticsearch and other strict consumers reject the whole line.
 */
export function duplicateKeys(text: string): string[] {
  const duplicates: string[] = [];
  const stack: Array<Set<string> | null> = [];
  let expectKey = false;
  for (let i = 0; i < text.length; i++) {
    const char = text[i];
    if (char === '"') {
      let end = i + 1;
      while (text[end] !== '"') end += text[end] === '\\' ? 2 : 1;
      const top = stack.at(-1);
      if (expectKey && top) {
        const key = JSON.parse(text.slice(i, end + 1)) as string;
        if (top.has(key)) duplicates.push(key);
        top.add(key);
        expectKey = false;
      }
      i = end;
    } else if (char === '{') {
      stack.push(new Set());
      expectKey = true;
    } else if (char === '[') stack.push(null);
    else if (char === '}' || char === ']') stack.pop();
    else if (char === ',') expectKey = stack.at(-1) instanceof Set;
  }
  return duplicates;
}

async function startApp(env: Record<string, string> = {}) {
  const [port, controlPort] = [await freePort(), await freePort()];
  const fixture = spawnFixture('logging-app.js', {
    PORT: String(port),
    CONTROL_PORT: String(controlPort),
    STEWARD_LOG_LEVEL: 'debug',
    ...env,
  });
  spawned.push(fixture);
  return { fixture, port, controlPort };
}

test('the duplicate-key check finds a repeated key at any depth', () => {
  assert.deepEqual(duplicateKeys('{"pid":1,"a":{"b":1,"b":2},"pid":3}'), ['b', 'pid']);
  assert.deepEqual(duplicateKeys('{"a":"x,\\"a\\":1","list":[{"a":1},{"a":2}]}'), []);
});

test('a full run (services, scrape, crash, re-fork, shutdown): every line is JSON without duplicate keys, the crash has its error and stack', async () => {
  const { fixture, port, controlPort } = await startApp();
  await fixture.waitForLogs(event('worker:ready'), 2, 20_000);
  await fixture.waitForLog(event('services:running'), 20_000);
  for (let i = 0; i < 4; i++) assert.equal((await get(`http://127.0.0.1:${port}/`)).status, 200);
  assert.equal((await get(`http://127.0.0.1:${controlPort}/metrics`)).status, 200);
  assert.equal((await get(`http://127.0.0.1:${controlPort}/status`)).status, 200);
  await get(`http://127.0.0.1:${port}/crash`);
  const crash = await fixture.waitForLog(event('worker:crash'), 15_000);
  await fixture.waitForLogs(event('worker:ready'), 3, 20_000);
  fixture.child.kill('SIGTERM');
  assert.equal((await fixture.exited).code, 0);

  const error = crash.error as { name: string; message: string; stack: string };
  assert.equal(error.message, 'deliberate failure in a request handler');
  assert.match(error.stack, /failDeliberately/);
  assert.equal(crash.cause, 'crash');

  assert.ok(fixture.lines.length > 25, `a full run logs plenty (${fixture.lines.length} lines)`);
  for (const text of fixture.lines) assert.deepEqual(duplicateKeys(text), [], text);
  const roles = new Set(fixture.logs.map((line) => line.role));
  for (const role of ['primary', 'worker', 'sibling']) assert.ok(roles.has(role), `lines from the ${role}`);
  assert.ok(fixture.logs.some(event('control:listening')));
});

test("the sibling follows the application's logger options: a pino transport gets every process's lines", async () => {
  const dir = mkdtempSync(join(tmpdir(), 'steward-logs-'));
  dirs.push(dir);
  const file = join(dir, 'app.log');
  const { fixture } = await startApp({
    FIXTURE_LOGGER: JSON.stringify({
      level: 'debug',
      base: { app: 'shop' },
      transport: { target: 'pino/file', options: { destination: file } },
    }),
  });
  // Nothing from cluster-steward on stdout: ready is read from the file.
  const fileLines = () =>
    readFileSync(file, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line) as Record<string, unknown>);
  await until(() => fileLines().some((line) => line.msg === 'services:running'), 20_000, 'services running');
  fixture.child.kill('SIGTERM');
  assert.equal((await fixture.exited).code, 0);
  const lines = fileLines();
  const sibling = lines.filter((line) => line.role === 'sibling');
  assert.ok(
    sibling.some((line) => line.msg === 'services:start'),
    'sibling lines reach the transport',
  );
  // The serialisable options crossed over: the sibling's lines carry the application's `base`.
  assert.ok(sibling.every((line) => line.app === 'shop'));
  const onStdout = fixture.logs.filter((line) => typeof line.level === 'number');
  assert.deepEqual(onStdout, [], 'no cluster-steward line bypassed the transport');
});

test('STEWARD_LOG_FORMAT=pretty writes readable lines in every process', async () => {
  const { fixture } = await startApp({ STEWARD_LOG_FORMAT: 'pretty', STEWARD_LOG_LEVEL: 'info' });
  await fixture.waitForLog(
    (line) => /INFO {2}primary worker \d+ \(pid \d+\) worker:ready/.test(line.msg ?? ''),
    20_000,
  );
  await fixture.waitForLog(
    (line) => /INFO {2}sibling \(pid \d+\) services:start/.test(line.msg ?? ''),
    20_000,
  );
  fixture.child.kill('SIGTERM');
  assert.equal((await fixture.exited).code, 0);
  assert.ok(fixture.logs.some((line) => /worker \d+ \(pid \d+\) worker:drain:done/.test(line.msg ?? '')));
  assert.ok(!fixture.logs.some((line) => typeof line.level === 'number'), 'no JSON line left');
});

test('pretty is chosen for a terminal unless JSON is asked for; an error prints its stack', () => {
  assert.equal(logFormat({}, { isTTY: true }), 'pretty');
  assert.equal(logFormat({}, { isTTY: false }), 'json');
  assert.equal(logFormat({ STEWARD_LOG_FORMAT: 'json' }, { isTTY: true }), 'json');
  assert.equal(logFormat({ STEWARD_LOG_FORMAT: 'pretty' }, {}), 'pretty');
  const line = JSON.stringify({
    level: 50,
    time: Date.UTC(2026, 0, 1, 12, 0, 1, 234),
    pid: 42,
    role: 'primary',
    worker: 3,
    msg: 'worker:crash',
    cause: 'crash',
    error: { name: 'Error', message: 'boom', stack: 'Error: boom\n    at handler (app.js:1:1)' },
  });
  const text = formatPrettyLine(line, false);
  assert.equal(
    text,
    '12:00:01.234 ERROR primary worker 3 (pid 42) worker:crash cause=crash error={"name":"Error","message":"boom"}\n' +
      '    Error: boom\n        at handler (app.js:1:1)',
  );
  assert.equal(formatPrettyLine('not json', false), 'not json');
});

test('a worker that does not log never loads pino: the primary writes its drain lines, with its pid and bindings', async () => {
  const port = await freePort();
  const fixture = spawnFixture('quiet-worker.js', { PORT: String(port) });
  spawned.push(fixture);
  await fixture.waitForLog(event('worker:ready'), 20_000);
  const quiet = JSON.parse((await get(`http://127.0.0.1:${port}/`)).body) as { pid: number; pino: boolean };
  assert.equal(quiet.pino, false, 'pino is not loaded in a worker that never logged');
  fixture.child.kill('SIGHUP');
  const done = await fixture.waitForLog(event('worker:drain:done'), 20_000);
  assert.equal(done.pid, quiet.pid, "the drain line carries the retired worker's pid");
  assert.equal(done.role, 'worker');
  assert.equal(typeof done.hostname, 'string');
  assert.equal(typeof done.worker, 'number');
  await fixture.waitForLogs(event('worker:ready'), 2, 20_000);

  const logged = JSON.parse((await get(`http://127.0.0.1:${port}/log`)).body) as {
    pid: number;
    pino: boolean;
  };
  assert.equal(logged.pino, true, 'the first use of ctx.logger loads it');
  const line = await fixture.waitForLog(event('app:logged'), 10_000);
  assert.equal(line.pid, logged.pid);
  fixture.child.kill('SIGTERM');
  assert.equal((await fixture.exited).code, 0);
  const drained = fixture.logs.filter(event('worker:drain:done'));
  assert.deepEqual(
    drained.map((entry) => entry.pid),
    [quiet.pid, logged.pid],
    'each drain line names its own worker, whoever wrote it',
  );
  for (const text of fixture.lines) assert.deepEqual(duplicateKeys(text), [], text);
});

/** A logger built from options, writing to `lines` instead of stdout. */
function capturedLogger(option: Record<string, unknown>, bindings: Record<string, unknown>) {
  const lines: string[] = [];
  const logger = createLogger(option, bindings, { write: (line: string) => void lines.push(line) });
  return { logger, lines };
}

test('STEWARD_LOG_LEVEL wins over the level in the options, and the relay threshold agrees', () => {
  const before = process.env.STEWARD_LOG_LEVEL;
  try {
    process.env.STEWARD_LOG_LEVEL = 'debug';
    assert.equal(capturedLogger({ level: 'warn' }, {}).logger.level, 'debug');
    assert.equal(levelThresholdOf({ level: 'warn' }), 20);
    delete process.env.STEWARD_LOG_LEVEL;
    assert.equal(capturedLogger({ level: 'warn' }, {}).logger.level, 'warn');
    assert.equal(levelThresholdOf({ level: 'warn' }), 40);
    assert.equal(levelThresholdOf({ customLevels: { audit: 35 } }), undefined);
  } finally {
    if (before === undefined) delete process.env.STEWARD_LOG_LEVEL;
    else process.env.STEWARD_LOG_LEVEL = before;
  }
});

test("another process's lines go through the same logger with that process's pid, and nothing twice", () => {
  const { logger, lines } = capturedLogger({ level: 'info', name: 'shop' }, { role: 'primary' });
  const worker = linesOfProcess(logger, 4242, { role: 'worker', worker: 3 })!;
  logger.info({ a: 1 }, 'own');
  worker.info({ b: 2, password: 'hunter2-secret' }, 'relayed');
  for (const line of lines) assert.deepEqual(duplicateKeys(line), [], line);
  const [own, relayed] = lines.map((line) => JSON.parse(line) as Record<string, unknown>);
  assert.equal(own!.pid, process.pid);
  assert.equal(own!.role, 'primary');
  assert.equal(relayed!.pid, 4242);
  assert.equal(relayed!.hostname, own!.hostname);
  assert.equal(relayed!.name, 'shop');
  assert.equal(relayed!.role, 'worker');
  assert.equal(relayed!.worker, 3);
  assert.ok(!lines[1]!.includes('hunter2-secret'), 'redacted like every line');
  // A user's pino instance keeps its own per-process fields: its workers write their lines themselves.
  const users = loadPino()({ level: 'info' }, { write: () => undefined });
  assert.equal(linesOfProcess(createLogger(users, { role: 'primary' }), 1, {}), undefined);
});
