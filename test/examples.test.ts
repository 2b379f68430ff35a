// Every runnable example under examples/ started as a user would, and the deployment files checked for
// the settings their README promises.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, test } from 'node:test';
import { declareQueue, deleteQueues, publish, uniqueQueue } from './helpers/amqp.js';
import { get, getJson } from './helpers/http.js';
import { dropSchema, PG_BASE, randomSuffix } from './helpers/pg.js';
import { event, isAlive, type Spawned, spawnFixture, until } from './helpers/process.js';
import { freePort } from './helpers/services.js';

interface ControlStatus {
  workers: Array<{ id: number; pid: number; state: string }>;
  services: { pid: number; services: Array<{ name: string; state: string; processed: number }> } | null;
}

/** Polls the control server's `/status` until `accept` holds, then returns that document. */
async function statusWhen(
  read: () => Promise<ControlStatus>,
  accept: (status: ControlStatus) => boolean,
  description: string,
): Promise<ControlStatus> {
  let matched: ControlStatus | undefined;
  await until(
    async () => {
      const status = await read();
      if (accept(status)) matched = status;
      return matched !== undefined;
    },
    20_000,
    description,
  );
  return matched!;
}

const spawned: Spawned[] = [];
after(() => {
  for (const example of spawned) example.killAll();
});

function startExample(path: string, env: Record<string, string>): Spawned {
  const example = spawnFixture(`../../examples/${path}`, { STEWARD_LOG_LEVEL: 'info', ...env });
  spawned.push(example);
  return example;
}

async function stop(example: Spawned): Promise<void> {
  example.child.kill('SIGTERM');
  assert.deepEqual(await example.exited, { code: 0, signal: null });
}

test('express-recycle: workers retire by request count, and by memory once RSS stays over maxRss', async () => {
  const port = await freePort();
  const app = startExample('express-recycle/app.js', {
    PORT: String(port),
    MAX_REQUESTS: '20',
    MAX_RSS: '150MB',
    MIN_LIFETIME: '0s',
  });
  await app.waitForLogs(event('worker:ready'), 2, 15_000);
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 60; i++) assert.equal((await get(`${url}/`)).status, 200);
  await app.waitForLogs(event('worker:recycle:done', { reason: 'max-requests', code: 0 }), 2, 15_000);

  const leak = await getJson<{ worker: number; leakedMb: number }>(`${url}/leak?mb=200`);
  assert.equal(leak.leakedMb, 200);
  const recycled = await app.waitForLog(event('worker:recycle:done', { reason: 'max-rss' }), 15_000);
  assert.equal(recycled.worker, leak.worker, 'the worker that grew is the one recycled');
  assert.equal((await get(`${url}/`)).status, 200);
  await stop(app);
});

test('katello-like: Candlepin events through the AMQP listener into a coalescing queue; worker kills leave the daemon alone', async () => {
  const queue = uniqueQueue('candlepin');
  const schema = `katello_${randomSuffix()}`;
  await declareQueue(queue);
  try {
    const [port, controlPort] = [await freePort(), await freePort()];
    const app = startExample('katello-like/server.js', {
      PORT: String(port),
      CONTROL_PORT: String(controlPort),
      DATABASE_URL: PG_BASE,
      AMQP_URL: 'amqp://guest:guest@127.0.0.1:5672',
      CANDLEPIN_QUEUE: queue,
      KATELLO_SCHEMA: schema,
    });
    await app.waitForLogs(event('worker:ready'), 2, 20_000);
    const control = () => getJson<ControlStatus>(`http://127.0.0.1:${controlPort}/status`);
    const count = (status: ControlStatus, name: string) =>
      status.services?.services.find((service) => service.name === name)?.processed ?? 0;
    const candlepin = (batch: string) =>
      Array.from({ length: 10 }, (_, i) => ({
        message_id: `${batch}-${i}`,
        subject: i % 2 === 0 ? 'entitlement.created' : 'compliance.created',
        body: JSON.stringify({ poolId: `pool-${i % 3}`, consumerUuid: `host-${i % 4}`, status: 'valid' }),
      }));

    await until(async () => (await get(`http://127.0.0.1:${port}/ping`)).status === 200, 15_000, 'ping 200');
    await publish(queue, candlepin('a'));
    const before = await statusWhen(
      control,
      (status) => count(status, 'candlepin-events') === 10 && count(status, 'katello-events') > 0,
      'the first batch handled',
    );
    const daemon = before.services!.pid;

    for (const worker of before.workers) process.kill(worker.pid, 'SIGKILL');
    // Published while the workers are dead or booting: the daemon does not depend on them.
    await publish(queue, candlepin('b'));
    const afterKills = await statusWhen(
      control,
      (status) =>
        count(status, 'candlepin-events') === 20 &&
        count(status, 'katello-events') > count(before, 'katello-events') &&
        status.workers.filter((worker) => worker.state === 'ready' && worker.id > 2).length === 2,
      'the second batch handled and two replacement workers ready',
    );
    assert.equal(afterKills.services!.pid, daemon, 'the services sibling was not restarted');
    assert.ok(isAlive(daemon));
    assert.equal(app.logs.filter(event('services:fork')).length, 1);

    // The replacements got the services status before they served their first request.
    for (let i = 0; i < 4; i++) assert.equal((await get(`http://127.0.0.1:${port}/ping`)).status, 200);
    const katello = await getJson<{
      status: string;
      services: Record<string, { status: string; message: string }>;
    }>(`http://127.0.0.1:${port}/katello/api/v2/ping`);
    assert.equal(katello.status, 'ok');
    assert.equal(katello.services.candlepin_events?.status, 'ok');
    assert.match(katello.services.candlepin_events?.message ?? '', /^20 Processed, 0 Failed$/);
    assert.equal(katello.services.katello_events?.status, 'ok');
    await stop(app);
  } finally {
    await deleteQueues(queue);
    await dropSchema(schema);
  }
});

test('metrics-scrape: every metric the Grafana dashboard and the alerting rules query is exposed by a cluster', async () => {
  const read = (name: string) =>
    readFileSync(new URL(`../examples/metrics-scrape/${name}`, import.meta.url), 'utf8');
  const dashboard = read('grafana-dashboard.json');
  JSON.parse(dashboard);
  const queried = new Set(
    [...`${dashboard}\n${read('cluster-steward-alerts.yml')}`.matchAll(/\bsteward_[a-z_]+/g)].map((match) =>
      match[0].replace(/_(bucket|sum|count)$/, ''),
    ),
  );
  assert.ok(queried.size >= 10, `queries found: ${[...queried].join(', ')}`);
  assert.match(read('prometheus.yml'), /metrics_path: \/metrics\n[\s\S]*targets: \["127\.0\.0\.1:9394"\]/);

  // The demo has workers and services, so every family of the library is registered.
  const [port, controlPort] = [await freePort(), await freePort()];
  const demo = startExample('demo/main.js', { PORT: String(port), CONTROL_PORT: String(controlPort) });
  await demo.waitForLogs(event('worker:ready'), 2, 15_000);
  const exposed = await until(
    async () => {
      const text = (await get(`http://127.0.0.1:${controlPort}/metrics`)).body;
      return text.includes('# HELP steward_service_up') && text;
    },
    10_000,
    'service metrics in the scrape',
  );
  const missing = [...queried].filter((name) => !new RegExp(`^# HELP ${name} `, 'm').test(String(exposed)));
  assert.deepEqual(missing, [], 'queried metrics absent from a real scrape');
  await stop(demo);
});

test('deploy: the systemd unit reloads with SIGHUP, stops with SIGTERM past the grace, restarts on failure', () => {
  const unit = readFileSync(
    new URL('../examples/deploy/cluster-steward-app.service', import.meta.url),
    'utf8',
  );
  const setting = (key: string) => new RegExp(`^${key}=(.*)$`, 'm').exec(unit)?.[1];
  assert.equal(setting('ExecReload'), '/bin/kill -HUP $MAINPID');
  assert.equal(setting('KillSignal'), 'SIGTERM');
  assert.equal(setting('Restart'), 'on-failure');
  const grace = /--grace (\d+)s/.exec(setting('ExecStart') ?? '');
  assert.ok(grace, 'ExecStart sets --grace');
  assert.ok(Number(setting('TimeoutStopSec')) > Number(grace[1]), 'TimeoutStopSec above the grace');
});

test('deploy: Kubernetes web pods run no services, the services pods run them alone', () => {
  const read = (name: string) =>
    readFileSync(new URL(`../examples/deploy/kubernetes/${name}`, import.meta.url), 'utf8');
  const web = read('web.yaml');
  const services = read('services.yaml');
  assert.doesNotMatch(web, /--services|"services"/, 'no services in the web role');
  assert.match(web, /^kind: Service$/m);
  const monitoring = read('monitoring.yaml');
  // Both roles: a control server behind the token from a Secret, probed on /healthz with that token.
  for (const manifest of [web, services]) {
    assert.match(manifest, /--control-port=9394/);
    assert.match(
      manifest,
      /STEWARD_CONTROL_TOKEN\s+valueFrom: \{ secretKeyRef: \{ name: myapp-control, key: token \} \}/,
    );
    for (const probe of ['readinessProbe', 'livenessProbe'])
      assert.match(
        manifest,
        new RegExp(
          `${probe}:\\s+exec:\\s+command:\\s+- node\\s+- -e\\s+- "fetch\\('http://127\\.0\\.0\\.1:9394/healthz'[^\\n]*STEWARD_CONTROL_TOKEN`,
        ),
      );
  }
  assert.match(monitoring, /kind: PodMonitor/);
  assert.match(monitoring, /credentials: \{ name: myapp-control, key: token \}/);
  const webGrace = Number(/--grace=(\d+)s/.exec(web)?.[1]);
  assert.ok(Number(/terminationGracePeriodSeconds: (\d+)/.exec(web)?.[1]) > webGrace);
  assert.match(
    services,
    /command: \["node", "node_modules\/\.bin\/cluster-steward", "services", "services\.js"\]/,
  );
  assert.match(services, /replicas: 1\n/);
  const servicesGrace = Number(/--grace=(\d+)s/.exec(services)?.[1]);
  assert.ok(Number(/terminationGracePeriodSeconds: (\d+)/.exec(services)?.[1]) > servicesGrace);
});
