import assert from 'node:assert/strict';
import { once } from 'node:events';
import { test } from 'node:test';
import pino from 'pino';
import { StewardError } from '../lib/errors.js';
import { loadServices } from '../lib/services/load-services.js';
import { ServiceHost } from '../lib/services/service-host.js';
import { resolveService, resolveServices } from '../lib/services/service-options.js';
import { serviceRecords } from '../lib/services/service-record.js';
import type { Service, ServiceContext, ServicesSnapshot } from '../lib/services/types.js';
import { until } from './helpers/process.js';

type Line = Record<string, unknown> & { msg: string };

/** A host whose pino output is kept as parsed lines, and whose snapshots are collected. */
function hostOf(services: Service[]) {
  const lines: Line[] = [];
  const snapshots: ServicesSnapshot[] = [];
  const logger = pino({ level: 'debug' }, { write: (text: string) => lines.push(JSON.parse(text)) });
  const host = new ServiceHost(resolveServices(services), {
    role: 'standalone',
    logger,
    onSnapshot: (snapshot) => snapshots.push(snapshot),
    guardProcess: false,
  });
  const state = (name: string) => host.snapshot().services.find((s) => s.name === name)!;
  const logged = (msg: string) => lines.filter((line) => line.msg === msg);
  return { host, lines, snapshots, state, logged };
}

const untilAborted = (ctx: ServiceContext) => once(ctx.signal, 'abort').then(() => undefined);

test('per-service options are validated with coded errors naming the option, range and value', () => {
  const run = async () => {};
  const cases: Array<[unknown, string, RegExp]> = [
    [{ run }, 'STEWARD_ERR_SERVICE_INVALID', /services\[0\]\.name/],
    [{ name: 'a b', run }, 'STEWARD_ERR_SERVICE_INVALID', /"a b"/],
    [{ name: 'x' }, 'STEWARD_ERR_SERVICE_INVALID', /services\.x\.run must be a function/],
    [
      { name: 'x', run, restart: { jitter: 2 } },
      'STEWARD_ERR_INVALID_OPTION',
      /`services\.x\.restart\.jitter` to be a number between 0 and 1, got `2` \(number\)/,
    ],
    [
      { name: 'x', run, restart: { intensty: 2 } },
      'STEWARD_ERR_UNKNOWN_OPTION',
      /Did you mean `services\.x\.restart\.intensity`/,
    ],
    [{ name: 'x', run, stopTimeout: 0 }, 'STEWARD_ERR_INVALID_OPTION', /stopTimeout` to be a duration >= 1/],
    [{ name: 'x', run, stallTimeout: -1 }, 'STEWARD_ERR_INVALID_OPTION', /got `-1` \(number\)/],
    [
      { name: 'x', run, restart: { initialDelay: 500, maxDelay: 100 } },
      'STEWARD_ERR_OPTION_CONFLICT',
      /maxDelay` \(100\) to be >= `services\.x\.restart\.initialDelay` \(500\)/,
    ],
  ];
  for (const [input, code, message] of cases) {
    assert.throws(
      () => resolveService(input, 0),
      (error: unknown) => error instanceof StewardError && error.code === code && message.test(error.message),
      JSON.stringify(input),
    );
  }
  // A connection string is never echoed: it may carry a password.
  assert.throws(
    () => resolveService({ name: 'x', run, singleton: { connectionString: 7 } }, 0),
    (error: unknown) => error instanceof StewardError && !/7/.test(error.message),
  );
  assert.throws(
    () =>
      resolveServices([
        { name: 'dup', run },
        { name: 'dup', run },
      ]),
    (error: unknown) => error instanceof StewardError && /used twice/.test(error.message),
  );
  const resolved = resolveService({ name: 'ok', run, restart: { maxDelay: '2s' }, stallTimeout: '5s' }, 0);
  assert.deepEqual(resolved.restart, {
    initialDelay: 100,
    maxDelay: 2000,
    jitter: 0.2,
    intensity: 5,
    period: 60000,
  });
  assert.equal(resolved.stallTimeout, 5000);
  assert.equal(resolved.stopTimeout, 10000);
});

test('a synchronous throw at start is a crash: backoff, restart, then running with the error kept', async () => {
  let attempts = 0;
  const { host, state, logged } = hostOf([
    {
      name: 'flaky',
      restart: { initialDelay: 20, maxDelay: 50 },
      run(ctx) {
        attempts++;
        if (attempts === 1) throw new Error('config not readable yet');
        ctx.ready();
        return untilAborted(ctx);
      },
    },
  ]);
  host.start();
  await until(() => state('flaky').state === 'running' && attempts === 2, 5_000, 'flaky running again');
  const status = state('flaky');
  assert.equal(status.restarts, 1);
  assert.equal(status.lastError?.message, 'config not readable yet');
  assert.equal(logged('service:backoff').length, 1);
  assert.equal(await host.stop(1_000), true);
  assert.equal(state('flaky').state, 'stopped');
});

test('a service that crashes every time reaches `failed` and keeps retrying at the maximum delay', async () => {
  let attempts = 0;
  const { host, state, logged } = hostOf([
    {
      name: 'broken',
      restart: { initialDelay: 10, maxDelay: 80, intensity: 2, period: 60_000, jitter: 0 },
      async run() {
        attempts++;
        throw new Error('refused');
      },
    },
  ]);
  host.start();
  await until(() => logged('service:failed').length >= 2, 5_000, 'two failed retries');
  const failed = logged('service:failed');
  assert.deepEqual(
    failed.map((line) => line.retryInMs),
    [80, 80],
  );
  assert.equal(state('broken').state, 'failed');
  assert.ok(attempts >= 4, `${attempts} attempts`);
  assert.equal(state('broken').lastError?.message, 'refused');
  assert.equal(await host.stop(1_000), true);
});

test('errors in snapshots are redacted: a connection URL never carries its password to the workers', async () => {
  const { host, state, snapshots } = hostOf([
    {
      name: 'leaky',
      restart: { initialDelay: 5_000, maxDelay: 5_000 },
      async run() {
        throw new Error('connect failed: amqp://katello:s3cr3t@broker:5671 and password=hunter2');
      },
    },
  ]);
  host.start();
  await until(() => snapshots.some((s) => s.services[0]!.state === 'backoff'), 2_000, 'crash reported');
  const error = snapshots.at(-1)!.services[0]!.lastError!;
  assert.equal(error.message, 'connect failed: amqp://katello:***@broker:5671 and password=***');
  assert.ok(!JSON.stringify(snapshots).includes('s3cr3t'));
  assert.ok(!JSON.stringify(host.snapshot()).includes('hunter2'));
  assert.equal(state('leaky').restarts, 1);
  await host.stop(1_000);
});

test('run() resolving before its signal aborted is a crash too', async () => {
  const { host, state } = hostOf([
    { name: 'quitter', restart: { initialDelay: 1_000, maxDelay: 1_000 }, async run() {} },
  ]);
  host.start();
  await until(() => state('quitter').state === 'backoff', 2_000, 'backoff');
  assert.match(state('quitter').lastError?.message ?? '', /resolved before its signal aborted/);
  await host.stop(1_000);
});

test('the stall watchdog restarts a connected service without progress, and only while it has work', async () => {
  let stalledRuns = 0;
  let idleRuns = 0;
  const { host, state, logged } = hostOf([
    {
      name: 'stuck',
      stallTimeout: 150,
      restart: { initialDelay: 10, maxDelay: 20, intensity: 100 },
      async run(ctx) {
        stalledRuns++;
        ctx.setConnected(true);
        ctx.ready();
        await untilAborted(ctx);
      },
    },
    {
      // Not connected and no backlog: nothing to make progress on, so never "stalled".
      name: 'quiet',
      stallTimeout: 150,
      async run(ctx) {
        idleRuns++;
        ctx.ready();
        await untilAborted(ctx);
      },
    },
  ]);
  const started = Date.now();
  host.start();
  await until(() => stalledRuns >= 3, 5_000, 'two watchdog restarts');
  const stalls = logged('service:stalled');
  assert.ok(stalls.length >= 2);
  assert.ok((stalls[0]!.idleMs as number) >= 150);
  assert.ok(Date.now() - started >= 300, 'no restart before stallTimeout');
  assert.equal(state('stuck').lastError?.code, 'STEWARD_ERR_SERVICE_STALLED');
  assert.equal(idleRuns, 1);
  assert.equal(state('quiet').state, 'running');
  await host.stop(1_000);
});

test('a service that ignores its stop signal is abandoned after stopTimeout and the stop is not clean', async () => {
  let settledOther = false;
  const { host, state, logged } = hostOf([
    {
      name: 'deaf',
      stopTimeout: 200,
      run(ctx) {
        ctx.ready();
        return new Promise(() => {});
      },
    },
    {
      name: 'polite',
      async run(ctx) {
        ctx.ready();
        await untilAborted(ctx);
        settledOther = true;
      },
    },
  ]);
  host.start();
  await until(() => state('deaf').state === 'running', 2_000, 'running');
  const started = Date.now();
  const clean = await host.stop(5_000);
  const took = Date.now() - started;
  assert.equal(clean, false);
  assert.ok(took >= 200 && took < 1_500, `stop took ${took} ms`);
  assert.equal(settledOther, true);
  const timeout = logged('service:stop:timeout');
  assert.equal(timeout.length, 1);
  assert.equal(timeout[0]!.service, 'deaf');
  assert.equal((timeout[0]!.err as { code: string }).code, 'STEWARD_ERR_SERVICE_STOP_TIMEOUT');
});

test('changes are coalesced into few snapshots, and records are disposed when the host stops', async () => {
  const { host, snapshots } = hostOf([
    {
      name: 'burst',
      async run(ctx) {
        ctx.ready();
        for (let i = 0; i < 500; i++) ctx.recordEvent({ outcome: 'processed', durationMs: 1 });
        await untilAborted(ctx);
      },
    },
  ]);
  const before = serviceRecords.size;
  host.start();
  await until(() => snapshots.some((s) => s.services[0]!.processed === 500), 2_000, 'burst reported');
  assert.ok(snapshots.length <= 3, `${snapshots.length} snapshots for 500 events`);
  assert.equal(snapshots.at(-1)!.role, 'standalone');
  assert.equal(snapshots.at(-1)!.pid, process.pid);
  await host.stop(1_000);
  assert.equal(serviceRecords.size, before - 1);
  assert.equal(snapshots.at(-1)!.services[0]!.state, 'stopped');
});

test('loadServices: a module without defineServices, a throwing factory or bad services give coded errors', async () => {
  const fixture = new URL('./fixtures/services-invalid.js', import.meta.url);
  const expectations: Array<[string, string, RegExp]> = [
    ['plain-array', 'STEWARD_ERR_SERVICES_MODULE', /must `export default defineServices/],
    ['factory-throws', 'STEWARD_ERR_SERVICES_MODULE', /factory .* threw: AMQP_URL is not set/],
    ['missing-run', 'STEWARD_ERR_SERVICE_INVALID', /services\.a\.run must be a function/],
    ['duplicate-name', 'STEWARD_ERR_SERVICE_INVALID', /"a" is used twice/],
    [
      'bad-option',
      'STEWARD_ERR_INVALID_OPTION',
      /`services\.a\.restart\.intensity` to be an integer >= 1, got `0`/,
    ],
  ];
  for (const [mode, code, message] of expectations) {
    process.env.FIXTURE_INVALID = mode;
    // A fresh URL per mode: ES modules are cached by URL.
    const url = new URL(`${fixture.href}?mode=${mode}`);
    await assert.rejects(loadServices(url), (error: unknown) => {
      assert.ok(error instanceof StewardError, mode);
      assert.equal(error.code, code, mode);
      assert.match(error.message, message, mode);
      return true;
    });
  }
  delete process.env.FIXTURE_INVALID;
  await assert.rejects(
    loadServices(new URL('./fixtures/no-such-services.js', import.meta.url)),
    (error: unknown) =>
      error instanceof StewardError &&
      error.code === 'STEWARD_ERR_SERVICES_MODULE' &&
      /Could not import the services module/.test(error.message),
  );
});

test('an abandoned run cannot mark the service running again', async () => {
  let zombieCalledReady = false;
  let runs = 0;
  const { host, state, logged } = hostOf([
    {
      name: 'zombie',
      stallTimeout: 100,
      stopTimeout: 100,
      restart: { initialDelay: 2_000, maxDelay: 2_000 },
      run(ctx) {
        runs++;
        ctx.setConnected(true);
        ctx.ready();
        // Ignores its signal; long after being abandoned it "reconnects".
        ctx.signal.addEventListener('abort', () => {
          setTimeout(() => {
            ctx.ready();
            zombieCalledReady = true;
          }, 300);
        });
        return new Promise(() => {});
      },
    },
  ]);
  host.start();
  await until(() => zombieCalledReady, 5_000, 'the abandoned run called ready()');
  assert.equal(logged('service:stop:timeout').length, 1);
  assert.equal(runs, 1);
  assert.equal(state('zombie').state, 'backoff');
  assert.equal(state('zombie').lastError?.code, 'STEWARD_ERR_SERVICE_STALLED');
  await host.stop(1_000);
});
