// cluster-steward with WORKERS workers of 10,000 series each; /metrics on the control server at PORT.
import http from 'node:http';
import { steward } from 'cluster-steward';
import { registerSeries } from './scrape-series.js';

await steward({
  workers: Number(process.env.WORKERS ?? 2),
  logger: { level: 'warn' },
  control: { port: Number(process.env.PORT), metricsTimeout: 10_000 },
  worker: () => {
    registerSeries();
    return http.createServer((_req, res) => res.end('ok')).listen(0, '127.0.0.1');
  },
});
