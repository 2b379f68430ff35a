import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { networkInterfaces } from 'node:os';
import { after, before, test } from 'node:test';
import { get } from './helpers/http.js';
import { randomSuffix } from './helpers/pg.js';
import { event, type Spawned, spawnFixture, until } from './helpers/process.js';
import { freePort } from './helpers/services.js';

const TOKEN = `reliability-${randomSuffix()}-0123456789abcdef`;
const auth = { authorization: `Bearer ${TOKEN}` };
let app: Spawned;
let control: { address: string; port: number };
let base: string;
let web: string;

interface Status {
  workers: Array<{ id: number; pid: number; state: string }>;
  services: { pid: number; at: number; services: Array<{ name: string; state: string; restarts: number }> };
}

const status = async () => JSON.parse((await get(`${base}/status`, { headers: auth })).body) as Status;

before(async () => {
  const port = await freePort();
  app = spawnFixture('reliability-secure-app.js', {
    PORT: String(port),
    FIXTURE_CONTROL: JSON.stringify({ token: TOKEN }),
    FIXTURE_PG_APP: `steward-test-secrets-${randomSuffix()}`,
  });
  const listening = await app.waitForLog(event('control:listening'), 15_000, 'control:listening');
  control = { address: listening.address as string, port: listening.port as number };
  base = `http://127.0.0.1:${control.port}`;
  web = `http://127.0.0.1:${port}`;
  await app.waitForLogs(event('worker:ready'), 2, 20_000);
});
after(() => app?.killAll());

test('the control server binds loopback when no host is given: other interfaces refuse the connection', async () => {
  assert.equal(control.address, '127.0.0.1');
  assert.equal((await get(`${base}/healthz`, { headers: auth })).status !== 401, true);
  const external = Object.values(networkInterfaces())
    .flat()
    .find((candidate) => candidate?.family === 'IPv4' && !candidate.internal)?.address;
  if (!external) return;
  const refused = await new Promise<string>((resolve) => {
    const socket = net.connect(control.port, external);
    socket.once('connect', () => {
      socket.destroy();
      resolve('connected');
    });
    socket.once('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? 'error'));
  });
  assert.equal(refused, 'ECONNREFUSED', `${external}:${control.port}`);
});

test('wrong tokens of the right and of other lengths all get 401; oversized requests are refused', async () => {
  const sameLength = `Bearer ${TOKEN.replace(/.$/, (c) => (c === 'f' ? 'e' : 'f'))}`;
  for (const wrong of [sameLength, `Bearer ${TOKEN.slice(1)}`, `Bearer ${TOKEN}${TOKEN}`, 'Bearer ', '']) {
    const reply = await get(`${base}/status`, { headers: { authorization: wrong } });
    assert.equal(reply.status, 401, JSON.stringify(wrong));
    assert.equal(JSON.parse(reply.body).error.code, 'STEWARD_ERR_CONTROL_AUTH');
  }
  // A 1 MB body and a 64 KB URL: refused (or the connection closed), never read into memory.
  const body = await rawRequest(`${base}/status`, { ...auth, 'content-length': String(1 << 20) }, 1 << 20);
  assert.ok(body === 413 || body === 'closed', `1 MB body: ${body}`);
  const longUrl = await rawRequest(`${base}/status?${'x'.repeat(64 * 1024)}`, auth);
  assert.ok(longUrl === 431 || longUrl === 414 || longUrl === 'closed', `64 KB URL: ${longUrl}`);
  // Still answering.
  assert.equal((await get(`${base}/status`, { headers: auth })).status, 200);
});

/** Sends a request with an optional body of `bodyBytes`; resolves with the status or 'closed'. */
function rawRequest(url: string, headers: Record<string, string>, bodyBytes = 0): Promise<number | 'closed'> {
  return new Promise((resolve) => {
    const request = http.request(url, { method: 'GET', headers, agent: false }, (response) => {
      response.resume();
      resolve(response.statusCode ?? 0);
    });
    request.on('error', () => resolve('closed'));
    if (bodyBytes > 0) request.write(Buffer.alloc(bodyBytes, 120));
    request.end();
  });
}

test('passwords in listener URLs appear in no log line, no /status answer and no worker status', async () => {
  const current = await until(
    async () => {
      const snapshot = await status();
      const byName = Object.fromEntries(snapshot.services.services.map((s) => [s.name, s]));
      const ready =
        byName['amqp-secret']!.restarts >= 1 &&
        byName['pg-secret']!.restarts >= 1 &&
        byName['config-echo']!.state === 'running';
      return ready ? snapshot : undefined;
    },
    20_000,
    'both listeners failed at least once and config-echo runs',
  );
  const statusBody = (await get(`${base}/status`, { headers: auth })).body;
  const workerBody = (await get(`${web}/status`)).body;
  const output = app.logs.map((line) => JSON.stringify(line)).join('\n') + app.stderr.join('');
  for (const [where, text] of [
    ['logs', output],
    ['/status', statusBody],
    ['worker status()', workerBody],
  ] as const) {
    assert.ok(!/s3cr3t/.test(text), `a secret leaked into ${where}`);
  }
  // The lines and errors that quoted the URLs are there, redacted.
  assert.match(output, /amqp:\/\/guest:\*\*\*@127\.0\.0\.1:5672/);
  assert.match(output, /postgres:\/\/steward_nobody:\*\*\*@127\.0\.0\.1:5432/);
  assert.match(statusBody, /cannot reach amqp:\/\/guest:\*\*\*@/);
  assert.equal(current!.services.services.length, 3);
});

test('a worker can ask to recycle itself only; messages only the primary or the sibling may send do nothing', async () => {
  const { workers } = await status();
  assert.equal(workers.length, 2);
  const [target, other] = workers as [Status['workers'][0], Status['workers'][0]];
  const sibling = (await status()).services.pid;
  // Ask through whichever worker answers, naming the other one, until the non-target worker sent it.
  let sender: number | undefined;
  for (let i = 0; i < 20 && sender === undefined; i++) {
    const reply = JSON.parse((await get(`${web}/recycle-other?id=${target.id}&pid=${target.pid}`)).body) as {
      worker: number;
    };
    if (reply.worker !== target.id) sender = reply.worker;
  }
  assert.equal(sender, other.id, 'the other worker sent a request naming the target');
  const done = await app.waitForLog(event('worker:recycle:done'), 15_000, 'a recycle');
  assert.equal(done.worker, other.id, 'only the sender was recycled');
  const whole = await until(
    async () => {
      const current = await status();
      return current.workers.filter((w) => w.state === 'ready').length === 2 ? current : undefined;
    },
    10_000,
    'two ready workers again',
  );
  assert.ok(
    whole!.workers.some((w) => w.id === target.id && w.pid === target.pid),
    'the named worker lives on',
  );
  assert.equal(app.logs.filter(event('worker:recycle:done')).length, 1);

  const spoofedAt = Date.now();
  for (let i = 0; i < 4; i++) await get(`${web}/spoof`);
  // Several pushes later, the primary and every worker still show the real services host.
  const later = await until(
    async () => {
      const current = await status();
      return current.services.at > spoofedAt + 1_000 ? current : undefined;
    },
    10_000,
    'status pushes after the spoofing',
  );
  assert.equal(later!.services.pid, sibling, 'the sibling was neither replaced nor stopped');
  assert.ok(!later!.services.services.some((s) => s.name === 'spoofed'));
  assert.ok(!(await get(`${web}/status`)).body.includes('spoofed'));
  assert.ok(!app.logs.some(event('services:exit')) && !app.logs.some(event('services:restart:start')));
  assert.equal(app.logs.filter(event('worker:recycle:done')).length, 1, 'no recycle from a spoofed limit');
});
