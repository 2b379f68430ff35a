import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import promClient from 'prom-client';
import { runServices } from '../lib/standalone/run-services.js';
import { get } from './helpers/http.js';
import { event, type Spawned, spawnFixture, until } from './helpers/process.js';

const cli = fileURLToPath(new URL('../dist/cli/main.js', import.meta.url));
const root = fileURLToPath(new URL('../', import.meta.url));
const execFileAsync = promisify(execFile);

const spawned: Spawned[] = [];
after(() => {
  for (const fixture of spawned) fixture.killAll();
});

test('services --control-port serves /healthz and /metrics behind the token, and exits 0 on SIGTERM', async () => {
  const token = 'services-control-token-0123456789';
  const fixture = spawnFixture('../../dist/cli/main.js', {}, [
    'services',
    'test/fixtures/throng-services.js',
    '--control-port',
    '0',
    '--control-token',
    token,
  ]);
  spawned.push(fixture);
  const listening = await fixture.waitForLog(event('control:listening'), 15_000, 'control:listening');
  assert.equal(listening.address, '127.0.0.1', 'loopback by default');
  const base = `http://127.0.0.1:${listening.port as number}`;
  const auth = { authorization: `Bearer ${token}` };

  assert.equal((await get(`${base}/healthz`)).status, 401, 'no token, no answer');
  await fixture.waitForLog(event('fixture:service:run'), 15_000, 'service running');
  await until(
    async () => (await get(`${base}/healthz`, { headers: auth })).status === 200,
    15_000,
    '/healthz 200',
  );
  const health = JSON.parse((await get(`${base}/healthz`, { headers: auth })).body) as { ok: boolean };
  assert.equal(health.ok, true);

  const processed =
    /^steward_events_total\{(?=[^}]*service="ticker")(?=[^}]*outcome="processed")[^}]*\} [1-9]/m;
  // The ticker counts an event every 100 ms: wait for the first one to show.
  const metrics = await until<Awaited<ReturnType<typeof get>> | null>(
    async () => {
      const reply = await get(`${base}/metrics`, { headers: auth });
      return processed.test(reply.body) ? reply : null;
    },
    15_000,
    'a processed event in /metrics',
  );
  assert.equal(metrics?.status, 200);
  assert.match(metrics.headers['content-type'] ?? '', /text\/plain/);
  assert.match(metrics.body, /^steward_service_up\{service="ticker"\} 1$/m);
  assert.match(metrics.body, /process_resident_memory_bytes\{role="standalone"\}/);

  const status = JSON.parse((await get(`${base}/status`, { headers: auth })).body) as {
    services: { role: string; services: { name: string }[] };
  };
  assert.equal(status.services.role, 'standalone');
  assert.deepEqual(
    status.services.services.map((service) => service.name),
    ['ticker'],
  );

  fixture.child.kill('SIGTERM');
  assert.deepEqual(await fixture.exited, { code: 0, signal: null });
});

test('services: --control-host without --control-port, or a short token, exits 2 naming the flag', async () => {
  const cases: [string[], RegExp][] = [
    [['--control-host', '127.0.0.1'], /`--control-host` needs `--control-port`/],
    [['--control-port', '0', '--control-token', 'short'], /`--control-token` to be a string of at least 16/],
    [['--control-port', 'x'], /`--control-port`/],
  ];
  for (const [flags, message] of cases) {
    const failure = await execFileAsync(
      process.execPath,
      [cli, 'services', 'test/fixtures/throng-services.js', ...flags],
      { cwd: root },
    ).then(
      () => assert.fail(`${flags.join(' ')} should fail`),
      (error: { code: number; stderr: string }) => error,
    );
    assert.equal(failure.code, 2, failure.stderr);
    assert.match(failure.stderr, message);
  }
});

test('services: a non-loopback --control-host needs a token or --control-allow-unauthenticated', async () => {
  const refused = await execFileAsync(
    process.execPath,
    [cli, 'services', 'test/fixtures/throng-services.js', '--control-port', '0', '--control-host', '0.0.0.0'],
    { cwd: root },
  ).then(
    () => assert.fail('an unprotected non-loopback control server should be refused'),
    (error: { code: number; stderr: string }) => error,
  );
  assert.equal(refused.code, 1, refused.stderr);
  assert.match(refused.stderr, /\[STEWARD_ERR_CONTROL_UNPROTECTED\]/);
  assert.match(refused.stderr, /--control-allow-unauthenticated/);

  const open = spawnFixture('../../dist/cli/main.js', { STEWARD_CONTROL_TOKEN: '' }, [
    'services',
    'test/fixtures/throng-services.js',
    '--control-port',
    '0',
    '--control-host',
    '0.0.0.0',
    '--control-allow-unauthenticated',
  ]);
  spawned.push(open);
  const listening = await open.waitForLog(event('control:listening'), 15_000, 'control:listening');
  assert.equal(listening.address, '0.0.0.0');
  open.child.kill('SIGTERM');
  assert.equal((await open.exited).code, 0);
});

test('runServices({ control }): /healthz answers 503 naming a failed service; /metrics adds the application metrics once', async () => {
  // The application's own metrics live in prom-client's global registry, default metrics included.
  const appCounter = new promClient.Counter({
    name: 'fencing_test_app_jobs_total',
    help: 'Jobs of the app.',
  });
  appCounter.inc(3);
  promClient.collectDefaultMetrics();
  process.env.FIXTURE_ONLY = 'crash-always';
  const services = await runServices(new URL('./fixtures/services-failing.js', import.meta.url), {
    signals: false,
    logger: { level: 'silent' },
    control: { port: 0 },
    statusInterval: 100,
  });
  const address = services.controlAddress();
  assert.ok(address, 'the control server is bound');
  const base = `http://127.0.0.1:${address.port}`;
  try {
    await until(
      () => services.snapshot().services.some((service) => service.state === 'failed'),
      20_000,
      'crash-always failed',
    );
    const reply = await get(`${base}/healthz`);
    assert.equal(reply.status, 503);
    assert.deepEqual(JSON.parse(reply.body), { ok: false, problems: ['service crash-always is failed'] });
    const metrics = await get(`${base}/metrics`);
    assert.match(metrics.body, /^fencing_test_app_jobs_total 3$/m);
    assert.match(metrics.body, /^steward_service_restarts_total\{service="crash-always"\} [1-9]/m);
    // A family both registries have appears once: the library's, labelled with the role.
    assert.equal(metrics.body.match(/^# HELP process_resident_memory_bytes /gm)?.length, 1);
    assert.match(metrics.body, /^process_resident_memory_bytes\{role="standalone"\} \d+/m);
  } finally {
    promClient.register.clear();
    const stopped = services.stop(5_000);
    await stopped;
    delete process.env.FIXTURE_ONLY;
  }
  await assert.rejects(get(`${base}/healthz`, { timeoutMs: 2_000 }), 'closed after stop');
});

test('steward() with services and no workers serves /healthz and /metrics from the primary', async () => {
  const fixture = spawnFixture('services-no-workers.js');
  spawned.push(fixture);
  const listening = await fixture.waitForLog(event('control:listening'), 15_000, 'control:listening');
  const base = `http://127.0.0.1:${listening.port as number}`;
  await fixture.waitForLog(event('fixture:service:run'), 15_000, 'service running');
  await until(async () => (await get(`${base}/healthz`)).status === 200, 15_000, '/healthz 200');
  const metrics = await get(`${base}/metrics`);
  assert.equal(metrics?.status, 200);
  assert.match(metrics.body, /^steward_service_up\{service="ticker"\} 1$/m);
  fixture.child.kill('SIGTERM');
  assert.equal((await fixture.exited).code, 0);
});
