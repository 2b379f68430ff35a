import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { event } from './helpers/process.js';
import { get, hang, startRecycleCluster } from './helpers/recycle-http.js';

interface KeepAliveAnswer {
  pid: number;
  connection: string | undefined;
  reused: boolean;
}

/** A request through a keep-alive agent, reporting whether it reused an idle connection. */
function keepAliveGet(agent: http.Agent, port: number, path: string): Promise<KeepAliveAnswer> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path, agent }, (response) => {
      let body = '';
      response.setEncoding('utf8').on('data', (chunk: string) => {
        body += chunk;
      });
      response.on('end', () =>
        resolve({
          pid: (JSON.parse(body) as { pid: number }).pid,
          connection: response.headers.connection,
          reused: req.reusedSocket,
        }),
      );
    });
    req.on('error', reject);
  });
}

test('a worker stuck in a request past drainTimeout is killed; its replacement serves', async (t) => {
  const { cluster, port, readyPids } = await startRecycleCluster(t, { recycle: { drainTimeout: 1_000 } });
  const original = readyPids();
  const stuck = hang(port);
  const cut = new Promise<void>((resolve) => stuck.on('close', resolve));
  const stuckIn = await cluster.waitForLog(event('fixture:hang'));
  process.kill(cluster.pid, 'SIGHUP');
  await cluster.waitForLog(event('cluster:rolling-restart:done'), 30_000);
  const timeouts = cluster.logs.filter(event('worker:drain:timeout'));
  assert.equal(timeouts.length, 1, 'only the worker holding the stuck request timed out');
  assert.equal(timeouts[0]!.inFlight, 1);
  const done = cluster.logs.filter(event('worker:recycle:done'));
  const killed = done.filter((line) => line.code !== 0);
  assert.equal(killed.length, 1);
  assert.equal(killed[0]!.workerPid, stuckIn.pid);
  assert.equal(timeouts[0]!.pid, stuckIn.pid);
  assert.equal(killed[0]!.code, 1);
  assert.ok((killed[0]!.drainMs as number) >= 1_000, `killed after ${killed[0]!.drainMs} ms`);
  assert.equal(done.filter((line) => line.code === 0).length, 1, 'the other worker drained cleanly');
  await cut; // the stuck client's connection ended with its worker
  const answer = await get(port);
  assert.equal(answer.status, 200);
  assert.ok(!original.includes(answer.pid));
});

test('a worker whose event loop is blocked past drainTimeout is killed by the primary', async (t) => {
  const { cluster, port, readyPids } = await startRecycleCluster(t, {
    workers: 1,
    recycle: { drainTimeout: 1_000 },
  });
  const [original] = readyPids();
  const blocked = hang(port, '/block?ms=8000');
  t.after(() => blocked.destroy());
  await cluster.waitForLog(event('fixture:block'));
  process.kill(cluster.pid, 'SIGHUP');
  const done = await cluster.waitForLog(event('worker:recycle:done'), 20_000);
  assert.equal(done.workerPid, original);
  assert.equal(done.signal, 'SIGKILL');
  // The worker's own deadline cannot fire in a blocked loop; the primary's, one second later, does.
  assert.ok(
    (done.drainMs as number) >= 2_000 && (done.drainMs as number) < 8_000,
    `killed after ${done.drainMs} ms`,
  );
  assert.ok(cluster.logs.some(event('worker:drain:kill', { workerPid: original })));
  assert.notEqual((await get(port)).pid, original);
});

test('a request on an idle keep-alive connection during the drain is answered with Connection: close', async (t) => {
  // Idle keep-alive connections are only closed after the server's keep-alive timeout: make it obvious.
  const { cluster, port } = await startRecycleCluster(t, {}, { KEEP_ALIVE_TIMEOUT: '10000' });
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  t.after(() => agent.destroy());
  const request = (path: string) => keepAliveGet(agent, port, path);
  const first = await request('/');
  assert.equal(first.connection, 'keep-alive');
  // Recycle exactly the worker holding our idle connection.
  const target = cluster.logs.find((line) => line.msg === 'worker:ready' && line.workerPid === first.pid)!;
  process.kill(cluster.pid, 'SIGHUP');
  await cluster.waitForLog(event('worker:drain:start', { worker: target.worker }), 20_000);
  const during = await request('/');
  assert.equal(during.reused, true, 'sent on the idle connection');
  assert.equal(during.pid, first.pid, 'answered by the draining worker');
  assert.equal(during.connection, 'close');
  const done = await cluster.waitForLog(event('worker:recycle:done', { worker: target.worker }), 20_000);
  assert.equal(done.code, 0);
  assert.ok((done.drainMs as number) < 10_000, 'the client closed the connection: no keep-alive wait');
});

test('at drainTimeout with nothing in flight, idle keep-alive connections are closed and the drain is clean', async (t) => {
  // A keep-alive timeout longer than the drain (as behind some load balancers): only the deadline ends it.
  const { cluster, port } = await startRecycleCluster(
    t,
    { recycle: { drainTimeout: 1_500 } },
    { KEEP_ALIVE_TIMEOUT: '60000' },
  );
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  t.after(() => agent.destroy());
  const first = await keepAliveGet(agent, port, '/');
  const target = cluster.logs.find((line) => line.msg === 'worker:ready' && line.workerPid === first.pid)!;
  const socketErrors: Error[] = [];
  const idle = Object.values(agent.freeSockets).flat()[0]!;
  idle.on('error', (error) => socketErrors.push(error));
  const ended = new Promise<void>((resolve) => idle.once('end', resolve));
  process.kill(cluster.pid, 'SIGHUP');
  const closed = await cluster.waitForLog(
    event('worker:drain:idle-closed', { worker: target.worker }),
    20_000,
  );
  assert.equal(closed.idleClosed, 1);
  await ended; // a FIN, not a reset
  const done = await cluster.waitForLog(event('worker:recycle:done', { worker: target.worker }), 20_000);
  assert.equal(done.code, 0);
  assert.ok(
    (done.drainMs as number) >= 1_500 && (done.drainMs as number) < 10_000,
    `drained in ${done.drainMs} ms`,
  );
  assert.deepEqual(socketErrors, []);
  assert.equal(cluster.logs.filter(event('worker:drain:timeout')).length, 0);
});

/** A self-signed certificate for 127.0.0.1, made with openssl in a temporary directory. */
function selfSignedCertificate(t: { after(fn: () => void): void }): { key: string; cert: string } {
  const dir = mkdtempSync(join(tmpdir(), 'steward-recycle-tls-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const key = join(dir, 'key.pem');
  const cert = join(dir, 'cert.pem');
  const subject = ['-days', '1', '-subj', '/CN=127.0.0.1'];
  execFileSync(
    'openssl',
    ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, ...subject],
    {
      stdio: 'ignore',
    },
  );
  return { key, cert };
}

for (const scheme of ['http', 'https'] as const) {
  test(`${scheme}: a slow response, silent for longer than the keep-alive timeout, is not taken for idle`, async (t) => {
    const tls = scheme === 'https' ? selfSignedCertificate(t) : undefined;
    // Idle connections may be closed 1.5 s into the drain; the response takes 3 s.
    const env: Record<string, string> = { KEEP_ALIVE_TIMEOUT: '500' };
    if (tls) Object.assign(env, { TLS_KEY: tls.key, TLS_CERT: tls.cert });
    const { cluster, port } = await startRecycleCluster(t, {}, env);
    const get = scheme === 'https' ? https.get : http.get;
    const answer = new Promise<{ status: number; connection: string | undefined; body: string }>(
      (resolve, reject) => {
        const path = '/?delay=3000&announce=1';
        const request = get(
          { host: '127.0.0.1', port, path, rejectUnauthorized: false, agent: false },
          (response) => {
            let body = '';
            response.setEncoding('utf8').on('data', (chunk: string) => {
              body += chunk;
            });
            response.on('end', () =>
              resolve({ status: response.statusCode ?? 0, connection: response.headers.connection, body }),
            );
          },
        );
        request.on('error', reject);
      },
    );
    const arrived = await cluster.waitForLog(event('fixture:request'));
    process.kill(cluster.pid, 'SIGHUP');
    const target = cluster.logs.find(
      (line) => line.msg === 'worker:ready' && line.workerPid === arrived.pid,
    )!;
    await cluster.waitForLog(event('worker:drain:start', { worker: target.worker }), 20_000);
    const done = await answer;
    assert.equal(done.status, 200);
    assert.equal((JSON.parse(done.body) as { pid: number }).pid, arrived.pid);
    assert.equal(done.connection, 'close');
    const recycled = await cluster.waitForLog(
      event('worker:recycle:done', { worker: target.worker }),
      20_000,
    );
    assert.equal(recycled.code, 0);
  });
}

/** Opens a connection upgraded to the fixture's echo protocol; resolves once the 101 came back. */
function upgrade(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => {
      socket.write('GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n');
    });
    socket.setEncoding('utf8');
    socket.once('data', (chunk: string) =>
      chunk.startsWith('HTTP/1.1 101') ? resolve(socket) : reject(new Error(chunk)),
    );
    socket.on('error', reject);
  });
}

test('an upgraded connection (WebSocket-like) is never taken for idle: it is cut only at drainTimeout', async (t) => {
  // Idle keep-alive connections would be closed 1.5 s into the drain; the deadline is 3 s.
  const { cluster, port } = await startRecycleCluster(
    t,
    { workers: 1, recycle: { drainTimeout: 3_000 } },
    { KEEP_ALIVE_TIMEOUT: '500', UPGRADE: 'keep' },
  );
  const socket = await upgrade(port);
  t.after(() => socket.destroy());
  const ended = new Promise<number>((resolve) => socket.once('close', () => resolve(Date.now())));
  process.kill(cluster.pid, 'SIGHUP');
  const start = await cluster.waitForLog(event('worker:drain:start'), 20_000);
  const closedAt = await ended;
  assert.ok(closedAt - (start.time as number) >= 2_500, `cut after ${closedAt - (start.time as number)} ms`);
  const timeout = await cluster.waitForLog(event('worker:drain:timeout'));
  assert.equal(timeout.upgradedConnections, 1);
  const done = await cluster.waitForLog(event('worker:recycle:done'), 20_000);
  assert.equal(done.code, 1);
});

test('an application that closes its upgraded connections on ctx.signal drains cleanly', async (t) => {
  const { cluster, port } = await startRecycleCluster(
    t,
    { workers: 1, recycle: { drainTimeout: 10_000 } },
    { UPGRADE: 'close-on-drain' },
  );
  const socket = await upgrade(port);
  t.after(() => socket.destroy());
  let farewell = '';
  socket.on('data', (chunk: string) => {
    farewell += chunk;
  });
  const ended = new Promise<void>((resolve) => socket.once('end', resolve));
  process.kill(cluster.pid, 'SIGHUP');
  await ended;
  assert.equal(farewell, 'bye');
  const done = await cluster.waitForLog(event('worker:recycle:done'), 20_000);
  assert.equal(done.code, 0);
  assert.ok((done.drainMs as number) < 5_000, `drained in ${done.drainMs} ms`);
});
