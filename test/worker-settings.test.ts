import assert from 'node:assert/strict';
import { test } from 'node:test';
import { resolveOptions } from '../lib/options.js';
import {
  callValues,
  readWorkerSettings,
  WORKER_SETTINGS_ENV,
  workerOptionsOf,
  workerSettingsEnv,
} from '../lib/worker/worker-settings.js';

const start = () => undefined;

test('a worker reads back the settings its primary resolved, units parsed and defaults applied', () => {
  const resolved = resolveOptions({
    worker: start,
    grace: '5s',
    heartbeatInterval: 250,
    signals: ['SIGTERM'],
    services: new URL('file:///srv/app/services.js'),
  });
  const settings = readWorkerSettings(workerSettingsEnv(resolved));
  assert.deepEqual(settings, {
    grace: 5_000,
    heartbeatInterval: 250,
    statusInterval: 2_000,
    signals: ['SIGTERM'],
    services: true,
    relayLogs: true,
  });
  const webOnly = readWorkerSettings(workerSettingsEnv(resolveOptions(start)));
  assert.equal(webOnly?.services, false);
  assert.equal(webOnly?.grace, 30_000);
  // A logger instance or custom levels: the primary cannot write the worker's lines as the worker would.
  const instance = { level: 'info', child: () => instance };
  assert.equal(
    readWorkerSettings(workerSettingsEnv(resolveOptions({ worker: start, logger: instance })))?.relayLogs,
    false,
  );
  const custom = resolveOptions({ worker: start, logger: { customLevels: { audit: 35 } } });
  assert.equal(readWorkerSettings(workerSettingsEnv(custom))?.relayLogs, false);
});

test('settings that are missing or damaged are not trusted: the worker resolves its options itself', () => {
  assert.equal(readWorkerSettings({}), undefined);
  const valid = {
    grace: 1,
    heartbeatInterval: 10,
    statusInterval: 10,
    signals: ['SIGINT'],
    services: false,
    relayLogs: true,
  };
  const damaged = [
    'not json',
    'null',
    JSON.stringify({ ...valid, grace: 'soon' }),
    JSON.stringify({ ...valid, heartbeatInterval: -1 }),
    JSON.stringify({ ...valid, signals: 'SIGTERM' }),
    JSON.stringify({ ...valid, services: 'yes' }),
    JSON.stringify({ ...valid, relayLogs: 1 }),
  ];
  for (const raw of damaged)
    assert.equal(readWorkerSettings({ [WORKER_SETTINGS_ENV]: raw }), undefined, `accepted ${raw}`);
  assert.deepEqual(readWorkerSettings({ [WORKER_SETTINGS_ENV]: JSON.stringify(valid) }), valid);
});

test("the worker's own call gives the start function in every call form, with its logger and registry", () => {
  const logger = { level: 'debug' };
  const register = { getMetricsAsJSON: async () => [] };
  assert.equal(callValues(start, undefined).worker, start);
  assert.equal(callValues(4, start).worker, start);
  assert.equal(callValues('4', start).worker, start);
  assert.equal(callValues({ start }, undefined).worker, start);
  const fromObject = callValues({ worker: start, logger, register, workers: 2 }, undefined);
  assert.equal(fromObject.worker, start);
  assert.equal(fromObject.logger, logger);
  assert.equal(fromObject.register, register);
  assert.deepEqual(callValues({ services: 'x' }, undefined), {
    worker: undefined,
    logger: undefined,
    register: undefined,
  });
});

test('a worker that resolved its options itself runs with the same values as one handed them', () => {
  const resolved = resolveOptions({ worker: start, grace: 1_000, logger: { level: 'warn' } });
  const own = workerOptionsOf(resolved);
  const handed = {
    ...readWorkerSettings(workerSettingsEnv(resolved)),
    ...callValues({ worker: start, grace: 1_000, logger: { level: 'warn' } }, undefined),
  };
  assert.deepEqual(handed, own);
});
