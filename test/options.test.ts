import assert from 'node:assert/strict';
import { test } from 'node:test';
import { StewardError } from '../lib/errors.js';
import { resolveOptions } from '../lib/options.js';
import { event, isAlive, spawnFixture, until } from './helpers/process.js';

const worker = () => undefined;
const services = new URL('file:///srv/app/services.js');

/** [description, options, expected code, expected message pattern] */
const invalid: [string, unknown, string, RegExp][] = [
  [
    'options not an object',
    42,
    'STEWARD_ERR_INVALID_OPTION',
    /`options` to be an object, got `42` \(number\)/,
  ],
  [
    'negative worker count',
    { worker, workers: -5 },
    'STEWARD_ERR_INVALID_OPTION',
    /`workers` to be an integer between 1 and 1024, got `-5` \(number\)/,
  ],
  [
    'fractional throng count',
    { worker, count: 1.5 },
    'STEWARD_ERR_INVALID_OPTION',
    /`count` to be an integer between 1 and 1024, got `1.5`/,
  ],
  [
    'workers and count together',
    { worker, workers: 2, count: 2 },
    'STEWARD_ERR_OPTION_CONFLICT',
    /`workers` or its throng alias `count`, not both/,
  ],
  [
    'worker not a function',
    { worker: 'server.js' },
    'STEWARD_ERR_INVALID_OPTION',
    /`worker` to be a function, got `'server.js'` \(string\)/,
  ],
  ['nothing to run', { workers: 2 }, 'STEWARD_ERR_OPTION_CONFLICT', /Give `worker`/],
  [
    'typo in a top-level key',
    { worker, wrokers: 2 },
    'STEWARD_ERR_UNKNOWN_OPTION',
    /Unknown option `wrokers`. Did you mean `workers`\?/,
  ],
  [
    'typo in a nested key',
    { worker, recycle: { maxRequest: 10 } },
    'STEWARD_ERR_UNKNOWN_OPTION',
    /`recycle.maxRequest`. Did you mean `recycle.maxRequests`\?/,
  ],
  [
    'maxRequests below 1',
    { worker, recycle: { maxRequests: -5 } },
    'STEWARD_ERR_INVALID_OPTION',
    /Expected `recycle.maxRequests` to be an integer >= 1, got `-5` \(number\)/,
  ],
  [
    'unreadable memory size',
    { worker, recycle: { maxRss: 'lots' } },
    'STEWARD_ERR_INVALID_OPTION',
    /`recycle.maxRss` to be a size >= 1 byte .* got `'lots'` \(string\)/,
  ],
  [
    'unreadable duration',
    { worker, recycle: { maxAge: '6 hours' } },
    'STEWARD_ERR_INVALID_OPTION',
    /`recycle.maxAge` to be a duration >= 1 ms .* got `'6 hours'`/,
  ],
  [
    'jitter without maxRequests',
    { worker, recycle: { maxRequestsJitter: 10 } },
    'STEWARD_ERR_OPTION_CONFLICT',
    /`recycle.maxRequestsJitter` needs `recycle.maxRequests`/,
  ],
  [
    'drain concurrency zero',
    { worker, recycle: { concurrency: 0 } },
    'STEWARD_ERR_INVALID_OPTION',
    /`recycle.concurrency` to be an integer between 1 and 1024, got `0`/,
  ],
  [
    'unknown placement',
    { worker, services, placement: 'worker' },
    'STEWARD_ERR_INVALID_OPTION',
    /`placement` to be 'sibling' or 'primary', got `'worker'`/,
  ],
  [
    'placement without services',
    { worker, placement: 'primary' },
    'STEWARD_ERR_OPTION_CONFLICT',
    /`placement` was given without `services`/,
  ],
  [
    'relative services path',
    { worker, services: './services.js' },
    'STEWARD_ERR_INVALID_OPTION',
    /`services` to be a file: URL or an absolute path/,
  ],
  [
    'control port out of range',
    { worker, control: { port: 70_000 } },
    'STEWARD_ERR_INVALID_OPTION',
    /`control.port` to be an integer between 0 and 65535, got `70000`/,
  ],
  [
    'short control token',
    { worker, control: { port: 0, token: 'abc' } },
    'STEWARD_ERR_INVALID_OPTION',
    /`control.token` to be a string of at least 16 characters/,
  ],
  ['negative grace', { worker, grace: -1 }, 'STEWARD_ERR_INVALID_OPTION', /`grace` to be a duration >= 0 ms/],
  [
    'signals not names',
    { worker, signals: ['TERM'] },
    'STEWARD_ERR_INVALID_OPTION',
    /`signals` to be a non-empty array of signal names/,
  ],
  [
    'SIGHUP as shutdown signal',
    { worker, signals: ['SIGHUP'] },
    'STEWARD_ERR_OPTION_CONFLICT',
    /cannot include SIGHUP/,
  ],
  [
    'restart jitter above 1',
    { worker, restart: { jitter: 2 } },
    'STEWARD_ERR_INVALID_OPTION',
    /`restart.jitter` to be a number between 0 and 1, got `2`/,
  ],
  [
    'maxDelay below initialDelay',
    { worker, restart: { initialDelay: 500, maxDelay: 100 } },
    'STEWARD_ERR_OPTION_CONFLICT',
    /`restart.maxDelay` \(100\) to be >= `restart.initialDelay` \(500\)/,
  ],
  [
    'heartbeat too fast',
    { worker, heartbeatInterval: 1 },
    'STEWARD_ERR_INVALID_OPTION',
    /`heartbeatInterval` to be an integer between 10 and 60000, got `1`/,
  ],
  [
    'register not a registry',
    { worker, register: {} },
    'STEWARD_ERR_INVALID_OPTION',
    /`register` to be a prom-client Registry/,
  ],
];

for (const [description, options, code, message] of invalid) {
  test(`rejects ${description}`, () => {
    assert.throws(
      () => resolveOptions(options),
      (error: unknown) => {
        assert.ok(error instanceof StewardError, `expected a StewardError, got ${String(error)}`);
        assert.equal(error.code, code);
        assert.match(error.message, message);
        return true;
      },
    );
  });
}

test('every invalid option set fails with a message of its own', () => {
  const messages = invalid.map(([, options]) => {
    try {
      resolveOptions(options);
      return 'accepted';
    } catch (error) {
      return (error as Error).message;
    }
  });
  assert.equal(new Set(messages).size, invalid.length);
});

test('throng option names are accepted', () => {
  const master = () => undefined;
  const resolved = resolveOptions({
    count: 3,
    start: worker,
    master,
    lifetime: Number.POSITIVE_INFINITY,
    grace: 1000,
    signals: ['SIGTERM'],
  });
  assert.equal(resolved.workers, 3);
  assert.equal(resolved.worker, worker);
  assert.equal(resolved.primary, master);
  assert.equal(resolved.grace, 1000);
  assert.deepEqual(resolved.signals, ['SIGTERM']);
  assert.equal(resolveOptions(worker).worker, worker, 'throng(startFunction) shorthand');
});

test('units and defaults resolve to numbers', () => {
  const resolved = resolveOptions({
    worker,
    recycle: { maxRss: '512MB', maxHeapUsed: '1GiB', maxAge: '6h', drainTimeout: '30s' },
  });
  assert.equal(resolved.recycle.maxRss, 512_000_000);
  assert.equal(resolved.recycle.maxHeapUsed, 1024 ** 3);
  assert.equal(resolved.recycle.maxAge, 6 * 3_600_000);
  assert.equal(resolved.recycle.drainTimeout, 30_000);
  assert.equal(resolved.recycle.concurrency, 1);
  assert.equal(resolved.placement, 'sibling');
  assert.equal(resolved.control, undefined);
  assert.equal(
    resolveOptions({ worker, control: { port: 9394 } }).control?.host,
    '127.0.0.1',
    'loopback by default',
  );
});

test('invalid options stop the primary before anything is forked', async () => {
  const fixture = spawnFixture('http-cluster.js', {
    FIXTURE_OPTIONS: JSON.stringify({ recycle: { maxRequests: -5 } }),
  });
  const { code } = await fixture.exited;
  assert.equal(code, 1);
  const stderr = fixture.stderr.join('');
  assert.match(stderr, /STEWARD_ERR_INVALID_OPTION/);
  assert.match(stderr, /Expected `recycle.maxRequests` to be an integer >= 1, got `-5` \(number\)/);
  assert.equal(fixture.logs.filter(event('worker:booting')).length, 0, 'no worker was forked');
  await until(() => !isAlive(-fixture.pid), 5_000, 'no process of the group left behind');
});
