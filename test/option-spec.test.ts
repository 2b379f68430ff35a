import assert from 'node:assert/strict';
import { test } from 'node:test';
import { defaultsOf, keysOf, type Spec } from '../lib/common/option-spec.js';
import { controlSpec } from '../lib/control-options.js';
import { StewardError } from '../lib/errors.js';
import { amqpSpec, resolveAmqpOptions } from '../lib/listeners/amqp/options.js';
import { queueLocationSpec } from '../lib/listeners/pg/enqueue.js';
import { eventQueueSpec, resolveEventQueueOptions } from '../lib/listeners/pg/event-queue-options.js';
import { notifySpec } from '../lib/listeners/pg/notify-listener.js';
import { resolveOptions, type StewardOptions, stewardSpec } from '../lib/options.js';
import { recycleSpec } from '../lib/recycle-options.js';
import { resolveService, serviceSpec } from '../lib/services/service-options.js';
import { singletonSpec } from '../lib/services/singleton-options.js';
import { runServicesSpec } from '../lib/standalone/standalone-options.js';

const worker = () => undefined;
const run = async () => {};
const pg = 'postgres://steward@127.0.0.1:5432/test';
const specs: Record<string, Spec> = {
  steward: stewardSpec,
  recycle: recycleSpec,
  control: controlSpec,
  runServices: runServicesSpec,
  service: serviceSpec,
  singleton: singletonSpec,
  amqp: amqpSpec,
  eventQueue: eventQueueSpec,
  notify: notifySpec,
  enqueue: queueLocationSpec,
};
const BUILT_IN = new Set(['integer', 'number', 'duration', 'bytes', 'boolean', 'string', 'enum', 'function']);

test('every entry of every spec refuses a wrong value with a coded error naming the option and, for built-in kinds, the range', () => {
  let checked = 0;
  for (const [group, spec] of Object.entries(specs)) {
    for (const [key, entry] of Object.entries(spec)) {
      const name = `${group}.${key}`;
      // 7.5 fits no option: not an integer, a whole ms, a string, a function or an object.
      assert.throws(
        () => entry.parse(name, 7.5),
        (error: unknown) => {
          assert.ok(error instanceof StewardError, name);
          assert.match(error.code, /^STEWARD_ERR_(INVALID_OPTION|INVALID_IDENTIFIER)$/, name);
          assert.ok(error.message.includes(`\`${name}`), `${name}: ${error.message}`);
          if (BUILT_IN.has(entry.kind))
            assert.ok(error.message.includes(entry.expected), `${name}: ${error.message}`);
          return true;
        },
        name,
      );
      checked++;
    }
  }
  assert.ok(checked > 80, `only ${checked} options checked`);
});

test('defaults, key lists and did-you-mean come from the spec', () => {
  assert.deepEqual(defaultsOf(recycleSpec), {
    maxRequestsJitter: 0,
    memoryChecks: 3,
    maxAgeJitter: 0,
    minLifetime: 10_000,
    concurrency: 1,
    drainTimeout: 30_000,
  });
  assert.deepEqual(keysOf(recycleSpec), Object.keys(recycleSpec));
  // A resolved group without input is exactly its defaults plus undefined for the limits without one.
  const resolved = resolveOptions({ worker });
  assert.deepEqual(
    Object.fromEntries(Object.entries(resolved.recycle).filter(([, value]) => value !== undefined)),
    defaultsOf(recycleSpec),
  );
  assert.deepEqual(Object.keys(resolved).sort(), Object.keys(stewardSpec).sort());
  // Every key of the spec is suggested for a one-letter typo, in every group.
  for (const key of Object.keys(recycleSpec)) {
    assert.throws(() => resolveOptions({ worker, recycle: { [`${key}x`]: 1 } }), {
      code: 'STEWARD_ERR_UNKNOWN_OPTION',
      message: new RegExp(`Did you mean \`recycle\\.${key}\``),
    });
  }
  // Defaults are copies: changing a resolved array leaves the next resolution alone.
  resolved.signals.push('SIGUSR1');
  assert.deepEqual(resolveOptions({ worker }).signals, ['SIGTERM', 'SIGINT']);
});

test('the public types accept what is accepted: durations as strings', () => {
  const options: StewardOptions = {
    worker,
    grace: '45s',
    lifetime: '1h',
    bootTimeout: '2s',
    recycle: { maxAge: '6h' },
  };
  const resolved = resolveOptions(options);
  assert.equal(resolved.grace, 45_000);
  assert.equal(resolved.lifetime, 3_600_000);
  assert.equal(resolved.bootTimeout, 2_000);
  assert.equal(resolved.recycle.maxAge, 21_600_000);
  assert.throws(() => resolveOptions({ worker, grace: 'soon' }), {
    code: 'STEWARD_ERR_INVALID_OPTION',
    message: /`grace` to be a duration >= 0 ms .*got `'soon'` \(string\)/,
  });
});

test('one backoff behaviour in every group: a delay given alone moves the other default, a contradiction names both', () => {
  const amqpBase = { name: 'a', queue: 'q', handler() {} };
  const queueBase = { name: 'q', connectionString: pg, handlers: { a() {} } };
  // A first delay above the default ceiling raises the ceiling.
  assert.equal(resolveOptions({ worker, restart: { initialDelay: 20_000 } }).restart.maxDelay, 20_000);
  assert.equal(
    resolveAmqpOptions({ ...amqpBase, reconnect: { initialDelay: 2_000 } }).reconnect.maxDelay,
    2_000,
  );
  assert.equal(
    resolveEventQueueOptions({ ...queueBase, retry: { initialDelay: 600_000 } }).retry.maxDelay,
    600_000,
  );
  assert.equal(
    resolveService({ name: 's', run, restart: { initialDelay: '1m' } }, 0).restart.maxDelay,
    60_000,
  );
  // A ceiling below the default first delay lowers the first delay.
  assert.equal(resolveOptions({ worker, restart: { maxDelay: 50 } }).restart.initialDelay, 50);
  assert.equal(
    resolveAmqpOptions({ ...amqpBase, redeliveryDelay: { maxDelay: 500 } }).redeliveryDelay.initialDelay,
    500,
  );
  assert.equal(resolveService({ name: 's', run, restart: { maxDelay: 20 } }, 0).restart.initialDelay, 20);
  // Both given and contradicting: refused, naming both with their values.
  const both = { initialDelay: 500, maxDelay: 100 };
  const contradictions: Array<[() => unknown, string, string]> = [
    [() => resolveOptions({ worker, restart: both }), 'STEWARD_ERR_OPTION_CONFLICT', 'restart'],
    [
      () => resolveService({ name: 's', run, restart: both }, 0),
      'STEWARD_ERR_OPTION_CONFLICT',
      'services.s.restart',
    ],
    [() => resolveAmqpOptions({ ...amqpBase, reconnect: both }), 'STEWARD_ERR_INVALID_OPTION', 'reconnect'],
    [() => resolveEventQueueOptions({ ...queueBase, retry: both }), 'STEWARD_ERR_INVALID_OPTION', 'retry'],
  ];
  for (const [resolve, code, prefix] of contradictions) {
    assert.throws(resolve, (error: unknown) => {
      assert.ok(error instanceof StewardError);
      assert.equal(error.code, code);
      assert.equal(
        error.message,
        `Expected \`${prefix}.maxDelay\` (100) to be >= \`${prefix}.initialDelay\` (500)`,
      );
      return true;
    });
  }
});

test('a secret option is never echoed, in any group', () => {
  const secret = 'hunter2-but-longer';
  const cases: Array<() => unknown> = [
    () => resolveAmqpOptions({ name: 'a', queue: 'q', handler() {}, password: { secret } }),
    () => resolveOptions({ worker, control: { port: 0, token: secret.slice(0, 10) } }),
    () => resolveService({ name: 's', run, singleton: { connectionString: `mysql://u:${secret}@h/db` } }, 0),
  ];
  for (const resolve of cases) {
    assert.throws(resolve, (error: unknown) => {
      assert.ok(error instanceof StewardError);
      assert.equal(error.code, 'STEWARD_ERR_INVALID_OPTION');
      assert.ok(!error.message.includes(secret.slice(0, 10)), error.message);
      return true;
    });
  }
});
