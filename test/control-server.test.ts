import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { after, test } from 'node:test';
import { get, type Reply } from './helpers/http.js';
import { event, type Spawned, spawnFixture, until } from './helpers/process.js';
import { parseExposition, total } from './helpers/prometheus.js';

const TOKEN = 'control-token-for-tests-0123456789';
const spawned: Spawned[] = [];
after(() => {
  for (const fixture of spawned) fixture.killAll();
});

async function start(control: Record<string, unknown>, env: Record<string, string> = {}) {
  const fixture = spawnFixture('metrics-cluster.js', {
    FIXTURE_OPTIONS: JSON.stringify({ workers: 1, control: { port: 0, ...control } }),
    FIXTURE_SERVICES: 'metrics-services.js',
    ...env,
  });
  spawned.push(fixture);
  const listening = await fixture.waitForLog(event('control:listening'), 15_000, 'control:listening');
  assert.equal(listening.address, '127.0.0.1', 'loopback by default');
  const base = `http://127.0.0.1:${listening.port as number}`;
  return { fixture, base };
}

/** A raw request, for methods and bodies `get()` does not send. */
function request(
  url: string,
  method: string,
  headers: Record<string, string>,
  body?: string,
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const length = body === undefined ? {} : { 'content-length': String(Buffer.byteLength(body)) };
    const outgoing = http.request(
      url,
      { method, headers: { ...headers, ...length }, agent: false },
      (response) => {
        let text = '';
        response.setEncoding('utf8').on('data', (chunk: string) => {
          text += chunk;
        });
        response.on('end', () =>
          resolve({ status: response.statusCode ?? 0, headers: response.headers, body: text }),
        );
      },
    );
    outgoing.on('error', reject);
    outgoing.end(body);
  });
}

test('the bearer token is enforced on every path, in constant time, before routing', async () => {
  const { fixture, base } = await start({ token: TOKEN });
  const auth = { authorization: `Bearer ${TOKEN}` };
  for (const path of ['/metrics', '/status', '/healthz', '/no-such-path']) {
    const anonymous = await get(base + path);
    assert.equal(anonymous.status, 401, `${path} without a token`);
    assert.match(String(anonymous.headers['www-authenticate']), /^Bearer/);
    assert.equal(JSON.parse(anonymous.body).error.code, 'STEWARD_ERR_CONTROL_AUTH');
    for (const wrong of [`Bearer ${TOKEN.slice(0, -1)}`, `Bearer ${TOKEN}x`, `Basic ${TOKEN}`, TOKEN])
      assert.equal((await get(base + path, { headers: { authorization: wrong } })).status, 401, wrong);
  }
  const metrics = await get(`${base}/metrics`, { headers: auth });
  assert.equal(metrics.status, 200);
  assert.match(String(metrics.headers['content-type']), /^text\/plain; version=0\.0\.4/);
  assert.ok(total(parseExposition(metrics.body), 'process_resident_memory_bytes', { role: 'primary' }) > 0);
  assert.equal(
    (await get(`${base}/metrics?x=1`, { headers: auth })).status,
    200,
    'query strings are ignored',
  );
  assert.equal((await get(`${base}/no-such-path`, { headers: auth })).status, 404);
  const post = await request(`${base}/metrics`, 'POST', auth);
  assert.equal(post.status, 405);
  assert.equal(post.headers.allow, 'GET');
  assert.equal((await request(`${base}/status`, 'GET', auth, 'x'.repeat(100))).status, 413);
  const huge = await request(`${base}/status`, 'GET', { ...auth, 'x-padding': 'x'.repeat(32 * 1024) });
  assert.equal(huge.status, 431, 'oversized headers are refused');
  // The token never appears in the logs.
  assert.ok(!fixture.logs.some((line) => JSON.stringify(line).includes(TOKEN)));

  const healthy = await until(
    async () => {
      const reply = await get(`${base}/healthz`, { headers: auth });
      return reply.status === 200 ? reply : undefined;
    },
    15_000,
    '/healthz 200 once the worker and the ticker service run',
  );
  assert.deepEqual(JSON.parse(healthy!.body), { ok: true, problems: [] });
  fixture.child.kill('SIGTERM');
  assert.equal((await fixture.exited).code, 0);
});

test('/status and /healthz report a service that stopped running; secrets are redacted', async () => {
  const { fixture, base } = await start({}, { FIXTURE_BROKEN: '1' });
  await fixture.waitForLogs(event('worker:ready'), 1, 20_000);
  const health = await until(
    async () => {
      const reply = await get(`${base}/healthz`);
      return reply.status === 503 && reply.body.includes('broken') ? reply : undefined;
    },
    15_000,
    '/healthz 503 naming the failed service',
  );
  assert.deepEqual(JSON.parse(health!.body), { ok: false, problems: ['service broken is failed'] });

  const statusReply = await get(`${base}/status`);
  assert.equal(statusReply.status, 200);
  assert.ok(!statusReply.body.includes('hunter2'), 'the password in the error is redacted');
  const status = JSON.parse(statusReply.body);
  assert.equal(status.pid, fixture.pid);
  assert.equal(status.workers.length, 1);
  const [worker] = status.workers;
  assert.equal(worker.state, 'ready');
  assert.ok(worker.pid > 0 && worker.pid !== fixture.pid);
  assert.ok(worker.age > 0 && worker.rss > 0 && worker.requests >= 0);
  const services = Object.fromEntries(status.services.services.map((s: { name: string }) => [s.name, s]));
  assert.equal(status.services.role, 'sibling');
  assert.equal(services.ticker.state, 'running');
  assert.equal(services.broken.state, 'failed');
  assert.match(services.broken.lastError.message, /postgres:\/\/app:\*\*\*@db\.internal/);

  const samples = parseExposition((await get(`${base}/metrics`)).body);
  assert.equal(total(samples, 'steward_service_up', { service: 'broken' }), 0);
  assert.equal(total(samples, 'steward_service_state', { service: 'broken', state: 'failed' }), 1);
  assert.ok(total(samples, 'steward_service_restarts_total', { service: 'broken' }) >= 1);

  // Shutdown: the services stop and the control server answers until it closes.
  fixture.child.kill('SIGTERM');
  assert.equal((await fixture.exited).code, 0);
});

test('a request head that arrives in pieces is answered, and so are the requests after it on the connection', async () => {
  const { fixture, base } = await start({ token: TOKEN });
  const socket = net.connect(Number(new URL(base).port), '127.0.0.1');
  let received = '';
  socket.setEncoding('utf8').on('data', (chunk: string) => {
    received += chunk;
  });
  const write = (text: string) =>
    new Promise<void>((resolve, reject) =>
      socket.write(text, (error) => (error ? reject(error) : resolve())),
    );
  try {
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
    // The server keeps the pieces until the head is complete; they end mid-line and mid-terminator.
    for (const piece of ['GET /sta', 'tus HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ', `${TOKEN}\r\n\r`])
      await write(piece);
    await write('\n');
    await until(() => /^HTTP\/1\.1 200 /.test(received), 10_000, 'the split request answered');
    // Two more on the same connection, in one write: unauthorized, then authorized.
    await write(
      'GET /status HTTP/1.1\r\nHost: x\r\n\r\n' +
        `GET /status HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TOKEN}\r\n\r\n`,
    );
    await until(() => received.match(/HTTP\/1\.1 \d+ /g)?.length === 3, 10_000, 'three answers');
    assert.deepEqual(
      received.match(/HTTP\/1\.1 (\d+) /g)?.map((line) => line.trim()),
      ['HTTP/1.1 200', 'HTTP/1.1 401', 'HTTP/1.1 200'],
    );
    assert.match(received, /"workers":\[/);
  } finally {
    socket.destroy();
    fixture.killAll();
  }
});

test('a control port in use fails the start with STEWARD_ERR_CONTROL_LISTEN before anything is forked', async () => {
  const occupier = http.createServer().listen(0, '127.0.0.1');
  await new Promise((resolve) => occupier.once('listening', resolve));
  const { port } = occupier.address() as { port: number };
  try {
    const fixture = spawnFixture('metrics-cluster.js', {
      FIXTURE_OPTIONS: JSON.stringify({ workers: 1, control: { port } }),
      FIXTURE_SERVICES: 'metrics-services.js',
    });
    spawned.push(fixture);
    const exit = await fixture.exited;
    assert.notEqual(exit.code, 0);
    assert.match(fixture.stderr.join(''), /STEWARD_ERR_CONTROL_LISTEN/);
    assert.match(fixture.stderr.join(''), new RegExp(`127\\.0\\.0\\.1:${port}`));
    assert.ok(!fixture.logs.some((line) => line.msg === 'worker:booting' || line.msg === 'services:fork'));
  } finally {
    occupier.close();
  }
});
