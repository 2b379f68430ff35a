import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import tls from 'node:tls';
import { promisify } from 'node:util';
import { amqpListener } from '../lib/amqp.js';
import {
  BROKER,
  declareQueue,
  deleteQueues,
  messagesWithIds,
  publish,
  runService,
  uniqueQueue,
} from './helpers/amqp.js';
import { until } from './helpers/process.js';

// RabbitMQ here has no TLS listener: a TLS-terminating forwarder with a self-signed certificate stands in.
let cert: Buffer;
let port: number;
let server: tls.Server;
let dir: string;
const queues: string[] = [];

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'steward-amqp-tls-'));
  await promisify(execFile)('openssl', [
    ...['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=localhost'],
    ...['-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1'],
    ...['-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')],
  ]);
  cert = await readFile(join(dir, 'cert.pem'));
  server = tls.createServer({ key: await readFile(join(dir, 'key.pem')), cert }, (socket) => {
    const upstream = net.connect(BROKER.port, BROKER.host);
    socket.pipe(upstream).pipe(socket);
    for (const side of [socket, upstream]) side.on('error', () => undefined);
    socket.on('close', () => upstream.destroy());
    upstream.on('close', () => socket.destroy());
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  port = (server.address() as net.AddressInfo).port;
});

after(async () => {
  server.close();
  await rm(dir, { recursive: true, force: true });
  await deleteQueues(...queues);
});

test('consumes over TLS with the given CA, from an amqps:// URL', async (t) => {
  const queue = uniqueQueue('tls');
  queues.push(queue);
  await declareQueue(queue);
  const handled = new Set<string>();
  const running = runService(
    amqpListener({
      name: 'amqp-tls',
      url: `amqps://guest:guest@127.0.0.1:${port}`,
      tls: { ca: cert },
      queue,
      handler: (message) => void handled.add(String(message.message_id)),
    }),
  );
  t.after(() => running.stop().catch(() => undefined));
  await publish(queue, messagesWithIds(20));
  await until(() => handled.size === 20, 10_000, 'every message handled over TLS');
  await running.stop();
  assert.equal(running.record.status.processed, 20);
  assert.equal(running.logs.find((l) => l.msg === 'amqp:connect:start')?.tls, true);
});

test('an untrusted certificate is a crash, not a reconnect loop', async (t) => {
  const running = runService(
    amqpListener({
      name: 'amqp-tls-untrusted',
      ...BROKER,
      port,
      tls: true,
      queue: 'never-consumed',
      handler: () => undefined,
    }),
  );
  t.after(() => running.stop().catch(() => undefined));
  await assert.rejects(running.done, (error: Error & { code?: string }) => {
    assert.equal(error.code, 'STEWARD_ERR_AMQP_CONNECTION');
    assert.match(error.message, /SELF_SIGNED/);
    return true;
  });
  assert.equal(running.logs.filter((l) => l.msg === 'amqp:connect:start').length, 1);
});
