import assert from 'node:assert/strict';
import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, test } from 'node:test';
import express from 'express';
import Fastify from 'fastify';
import { applyStatusUpdate } from '../lib/common/cluster-status.js';
import { ServiceRecord } from '../lib/services/service-record.js';
import type { ServiceStatus, ServicesSnapshot } from '../lib/services/types.js';
import { expressPingHandler, fastifyPingHandler, httpPingHandler } from '../lib/worker/ping-handler.js';
import { get } from './helpers/http.js';

const closers: Array<() => Promise<unknown>> = [];
after(() => Promise.all(closers.map((close) => close())));

/** A status as the host publishes it, from the host's own record, in the given state. */
function service(
  name: string,
  state: ServiceStatus['state'],
  fields: Partial<ServiceStatus> = {},
): ServiceStatus {
  const record = new ServiceRecord(name, false);
  record.dispose();
  return { ...record.status, state, ...fields };
}

function push(services: ServiceStatus[], staleAfter = 60_000): void {
  const snapshot: ServicesSnapshot = { role: 'sibling', pid: 4242, at: Date.now(), services };
  applyStatusUpdate({ services: snapshot, sentAt: Date.now() }, true, staleAfter);
}

async function listen(server: http.Server): Promise<string> {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  closers.push(() => new Promise((resolve) => server.close(resolve)));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/ping`;
}

async function urls(): Promise<Record<string, string>> {
  const app = express();
  app.get('/ping', expressPingHandler());
  const fastify = Fastify();
  fastify.get('/ping', fastifyPingHandler());
  await fastify.listen({ port: 0, host: '127.0.0.1' });
  closers.push(() => fastify.close());
  return {
    http: await listen(http.createServer(httpPingHandler())),
    express: await listen(http.createServer(app)),
    fastify: `http://127.0.0.1:${(fastify.server.address() as AddressInfo).port}/ping`,
  };
}

test('ping handlers (http, Express, Fastify): 200 when every non-standby service runs, 503 otherwise', async () => {
  const endpoints = await urls();
  const check = async (status: number, match: (body: Record<string, unknown>) => boolean) => {
    for (const [framework, url] of Object.entries(endpoints)) {
      const reply = await get(url);
      assert.equal(reply.status, status, framework);
      assert.match(String(reply.headers['content-type']), /application\/json/, framework);
      const body = JSON.parse(reply.body) as Record<string, unknown>;
      assert.ok(match(body), `${framework}: ${reply.body}`);
    }
  };

  push([service('amqp', 'running'), service('queue', 'standby', { leader: false })]);
  await check(200, (body) => body.healthy === true && (body.host as { pid: number }).pid === 4242);

  const error = new Error('broker refused');
  push([
    service('amqp', 'failed', {
      restarts: 6,
      lastError: { name: 'Error', message: error.message, stack: error.stack ?? '' },
    }),
    service('queue', 'running'),
  ]);
  await check(503, (body) => {
    const amqp = (body.services as Array<{ name: string; lastError: string }>)[0]!;
    // A ping may be public: the error message, never the stack.
    return (
      body.healthy === false &&
      amqp.lastError === 'Error: broker refused' &&
      !JSON.stringify(body).includes(' at ')
    );
  });

  for (const state of ['starting', 'backoff', 'stopping', 'stopped'] as const) {
    push([service('amqp', state)]);
    await check(503, (body) => body.healthy === false);
  }

  // A snapshot nobody refreshed is stale: unhealthy even if it said "running".
  push([service('amqp', 'running')], 20);
  await new Promise((resolve) => setTimeout(resolve, 40));
  await check(503, (body) => body.stale === true && body.healthy === false);
});

test('ping handlers: a web-only server (no services configured) is healthy; HEAD has no body', async () => {
  const endpoints = await urls();
  applyStatusUpdate({ services: null, sentAt: Date.now() }, false, 60_000);
  for (const url of Object.values(endpoints)) assert.equal((await get(url)).status, 200);
  const head = await new Promise<http.IncomingMessage>((resolve, reject) =>
    http.request(endpoints.http!, { method: 'HEAD', agent: false }, resolve).on('error', reject).end(),
  );
  assert.equal(head.statusCode, 200);
  assert.ok(Number(head.headers['content-length']) > 0);
  head.resume();
  await once(head, 'end');
});
