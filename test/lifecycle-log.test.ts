import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import pino from 'pino';
import { LifecycleLog, recordLifecycle } from '../lib/primary/dashboard/lifecycle-log.js';

/** A pino logger at `level` whose lines are collected, parsed, in `lines`. */
function collectingLogger(level: string) {
  const lines: Array<Record<string, unknown>> = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString('utf8').split('\n')) if (line) lines.push(JSON.parse(line));
      done();
    },
  });
  return { logger: pino({ level }, stream), lines };
}

test('the ring keeps the newest events in order and answers what came after a sequence number', () => {
  const log = new LifecycleLog(3);
  assert.equal(log.lastSeq, 0);
  assert.deepEqual(log.after(), []);
  for (let i = 1; i <= 5; i++) log.record('info', `worker:event-${i}`, { i });
  assert.equal(log.lastSeq, 5);
  assert.deepEqual(
    log.after().map((entry) => entry.seq),
    [3, 4, 5],
  );
  assert.deepEqual(
    log.after(4).map((entry) => entry.event),
    ['worker:event-5'],
  );
  assert.deepEqual(log.after(5), []);
  log.record('warn', 'worker:event-6', {});
  assert.deepEqual(
    log.after(0).map((entry) => entry.seq),
    [4, 5, 6],
  );
});

test('the default ring holds the last 200 events', () => {
  const log = new LifecycleLog();
  for (let i = 0; i < 450; i++) log.record('info', 'worker:ready', { i });
  const kept = log.after();
  assert.equal(kept.length, 200);
  assert.equal(kept[0]!.fields.i, 250);
  assert.equal(kept.at(-1)!.fields.i, 449);
});

test('a recording logger records lifecycle events through its children and still writes every line', () => {
  const { logger, lines } = collectingLogger('info');
  const log = new LifecycleLog();
  const recording = recordLifecycle(logger, log);
  const worker = recording.child({ worker: 3, workerPid: 4321, role: 'primary' });
  worker.info({ reason: 'maxRequests', drainMs: 12 }, 'worker:recycle:done');
  recording.warn({ crashes: 2 }, 'services:crash');
  recording.info('plain words are not an event');
  recording.info({ some: 'field' });
  worker.debug({ queued: 1 }, 'worker:recycle:queued');
  recording.fatal({ code: 'STEWARD_ERR_CRASH_LOOP' }, 'cluster:crash-loop: workers crash too often');

  const events = log.after();
  assert.deepEqual(
    events.map((entry) => [entry.level, entry.event]),
    [
      ['info', 'worker:recycle:done'],
      ['warn', 'services:crash'],
      ['fatal', 'cluster:crash-loop'],
    ],
  );
  assert.deepEqual(events[0]!.fields, { worker: 3, workerPid: 4321, reason: 'maxRequests', drainMs: 12 });
  assert.equal(events[2]!.fields.detail, 'workers crash too often');
  assert.deepEqual(
    lines.map((line) => line.msg),
    [
      'worker:recycle:done',
      'services:crash',
      'plain words are not an event',
      undefined,
      'cluster:crash-loop: workers crash too often',
    ],
  );
  assert.equal(lines[0]!.worker, 3, 'the child keeps its bindings');
});

test('events below the logger level are still recorded (info and up), debug never', () => {
  const { logger, lines } = collectingLogger('error');
  const log = new LifecycleLog();
  const recording = recordLifecycle(logger, log);
  recording.info({ workers: 2 }, 'cluster:starting');
  recording.debug('worker:recycle:queued');
  assert.deepEqual(
    log.after().map((entry) => entry.event),
    ['cluster:starting'],
  );
  assert.equal(lines.length, 0, 'the logger itself still filters by level');
  assert.equal(recording.level, 'error');
  assert.equal(recording.isLevelEnabled('error'), true);
});

test('recorded fields hide secrets and turn errors into plain data', () => {
  const { logger } = collectingLogger('info');
  const log = new LifecycleLog();
  const recording = recordLifecycle(logger, log);
  const error = Object.assign(new Error('connect failed: amqp://guest:hunter2@broker:5672'), {
    code: 'ECONNREFUSED',
  });
  recording.error(
    { err: error, url: 'postgres://app:s3cret@db/test', token: 'abc', nested: { password: 'x' } },
    'service:failed',
  );
  const [entry] = log.after();
  const fields = entry!.fields as Record<string, Record<string, unknown> | string>;
  const recordedError = fields.err as Record<string, unknown>;
  assert.equal(recordedError.name, 'Error');
  assert.equal(recordedError.code, 'ECONNREFUSED');
  assert.equal(recordedError.message, 'connect failed: amqp://guest:***@broker:5672');
  assert.doesNotMatch(String(recordedError.stack), /hunter2/);
  assert.equal(fields.url, 'postgres://app:***@db/test');
  assert.equal(fields.token, '***');
  assert.deepEqual(fields.nested, { password: '***' });
  assert.doesNotMatch(JSON.stringify(entry), /hunter2|s3cret|abc/);
});

test('long field values are cut so the ring stays small', () => {
  const { logger } = collectingLogger('info');
  const log = new LifecycleLog();
  recordLifecycle(logger, log).info({ text: 'x'.repeat(10_000) }, 'service:problem');
  const text = log.after()[0]!.fields.text as string;
  assert.ok(text.length <= 2_001, `cut to ${text.length} characters`);
});
