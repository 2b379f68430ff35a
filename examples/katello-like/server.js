// A Katello-like server: HTTP workers serve the API and a ping; the event daemon (services.js) runs in
// the services sibling, so killing or recycling workers never stops it.
//
//   DATABASE_URL=postgres://postgres@127.0.0.1:5432/test AMQP_URL=amqp://guest:guest@127.0.0.1:5672 \
//     node examples/katello-like/server.js
import http from 'node:http';
import { httpPingHandler, pingResult, steward } from 'cluster-steward';

for (const name of ['DATABASE_URL', 'AMQP_URL']) {
  if (!process.env[name]) {
    console.error(
      `Set ${name}: the Katello-like example needs PostgreSQL and an AMQP 1.0 broker (see README.md)`,
    );
    process.exit(2);
  }
}

/** Katello's `/katello/api/v2/ping` shape: `ok` or `FAIL` per service, with its counters as a message. */
function katelloPing(_request, response) {
  const { statusCode, body } = pingResult();
  const services = Object.fromEntries(
    body.services.map((service) => [
      service.name.replace(/-/g, '_'),
      {
        status: service.state === 'running' ? 'ok' : 'FAIL',
        message: `${service.processed} Processed, ${service.failed} Failed${service.lastError ? `: ${service.lastError}` : ''}`,
      },
    ]),
  );
  response.writeHead(statusCode, { 'content-type': 'application/json' });
  response.end(JSON.stringify({ status: statusCode === 200 ? 'ok' : 'FAIL', services }));
}

const ping = httpPingHandler();

await steward({
  workers: Number(process.env.WORKERS ?? 2),
  worker: () =>
    http
      .createServer((request, response) => {
        if (request.url === '/ping') return ping(request, response);
        if (request.url === '/katello/api/v2/ping') return katelloPing(request, response);
        response.writeHead(200, { 'content-type': 'application/json' });
        response.end(JSON.stringify({ pid: process.pid }));
      })
      .listen(Number(process.env.PORT ?? 3000), '127.0.0.1'),
  services: new URL('./services.js', import.meta.url),
  recycle: { maxRequests: 10_000, maxRequestsJitter: 1_000, maxRss: '1GB' },
  control: { port: Number(process.env.CONTROL_PORT ?? 9394) },
  statusInterval: 1_000,
  grace: 10_000,
});
