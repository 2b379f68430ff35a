// A clustered HTTP server whose own metrics, the library's and Node's are served for the whole cluster
// on http://127.0.0.1:9394/metrics. Run: npm run build && node examples/metrics-scrape/app.js
import http from 'node:http';
import { steward } from 'cluster-steward';
import promClient from 'prom-client';

const requests = new promClient.Counter({
  name: 'app_http_requests_total',
  help: 'HTTP requests by status code.',
  labelNames: ['code'],
});

await steward({
  workers: 2,
  control: { port: 9394, ...(process.env.CONTROL_TOKEN ? { token: process.env.CONTROL_TOKEN } : {}) },
  recycle: { maxRequests: 1000, maxRequestsJitter: 100 },
  worker: () =>
    http
      .createServer((_request, response) => {
        response.end('hello\n');
        requests.inc({ code: String(response.statusCode) });
      })
      .listen(3000, '127.0.0.1'),
});
