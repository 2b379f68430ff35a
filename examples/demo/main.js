// `npm start`: a clustered HTTP server (2 workers) whose event daemon runs in its own process, with
// workers recycled every ~200 requests and the control server on 127.0.0.1:9394. Open
// http://127.0.0.1:3000/ and reload it: the answering worker changes and is replaced, the daemon's
// counters keep climbing. Environment: PORT, HOST, CONTROL_PORT, DATABASE_URL, AMQP_URL (see README.md).
import { steward } from 'cluster-steward';
import { eventSources } from './services.js';

const port = Number(process.env.PORT ?? 3000);
const host = process.env.HOST ?? '127.0.0.1';
const controlPort = Number(process.env.CONTROL_PORT ?? 9394);

const supervisor = await steward({
  workers: 2,
  // Only workers import the HTTP application; the primary and the services sibling never load it.
  worker: async (_id, _disconnect, ctx) => {
    const { startServer } = await import('./server.js');
    return startServer({ port, host, controlPort, ctx });
  },
  services: new URL('./services.js', import.meta.url),
  // Low limits so recycling shows within seconds of reloading the page or running a load tool.
  recycle: { maxRequests: 200, maxRequestsJitter: 100, minLifetime: '1s', drainTimeout: '10s' },
  control: { port: controlPort },
  grace: 10_000,
  statusInterval: 1_000,
});

// steward() resolves with the supervisor in the primary only; in a worker it resolves with nothing.
supervisor?.logger.info(
  {
    url: `http://${host}:${port}/`,
    ping: `http://${host}:${port}/ping`,
    metrics: `http://127.0.0.1:${controlPort}/metrics`,
    events: eventSources(process.env),
  },
  'demo:started',
);
