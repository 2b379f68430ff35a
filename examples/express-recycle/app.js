// An Express application under cluster-steward, recycled by request count and by memory. Each worker
// retires after MAX_REQUESTS (+ up to 10 % jitter) requests, or once its resident memory stays above
// MAX_RSS for two heartbeats in a row; the replacement is ready before the old worker drains.
//
//   npm run build && node examples/express-recycle/app.js
//   curl 127.0.0.1:3000/              # which worker answered, its requests and memory
//   curl 127.0.0.1:3000/leak?mb=100   # grow this worker's memory past MAX_RSS: it gets recycled
import { steward } from 'cluster-steward';
import express from 'express';

const port = Number(process.env.PORT ?? 3000);
const maxRequests = Number(process.env.MAX_REQUESTS ?? 1000);

await steward({
  workers: Number(process.env.WORKERS ?? 2),
  worker: (id, _disconnect, ctx) => {
    const app = express();
    // A stand-in for a slow leak (a cache without bound, a listener added per request...).
    const leaked = [];
    let served = 0;
    app.use((_request, _response, next) => {
      served++;
      next();
    });
    app.get('/', (_request, response) => {
      const { rss, heapUsed } = process.memoryUsage();
      response.json({
        worker: id,
        pid: process.pid,
        requests: served,
        rssMb: Math.round(rss / 2 ** 20),
        heapUsed,
      });
    });
    app.get('/leak', (request, response) => {
      const mb = Math.min(Number(request.query.mb ?? 10), 512);
      // Filled, so the pages are resident and count in RSS.
      leaked.push(Buffer.alloc(mb * 2 ** 20, 1));
      response.json({
        worker: id,
        leakedMb: leaked.reduce((sum, buffer) => sum + buffer.length, 0) / 2 ** 20,
      });
    });
    ctx.logger.info({ port }, 'express:listening');
    // Returning the server lets cluster-steward count its requests and drain it.
    return app.listen(port, process.env.HOST ?? '127.0.0.1');
  },
  recycle: {
    maxRequests,
    maxRequestsJitter: Math.ceil(maxRequests / 10),
    maxRss: process.env.MAX_RSS ?? '256MB',
    memoryChecks: 2,
    minLifetime: process.env.MIN_LIFETIME ?? '10s',
  },
  ...(process.env.CONTROL_PORT ? { control: { port: Number(process.env.CONTROL_PORT) } } : {}),
  grace: 10_000,
});
