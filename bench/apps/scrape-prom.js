// The baseline: bare node:cluster with prom-client's AggregatorRegistry.clusterMetrics() in the primary.
import cluster from 'node:cluster';
import http from 'node:http';
import promClient from 'prom-client';
import { registerSeries } from './scrape-series.js';

// Constructed in every process: in workers this installs prom-client's reply listener.
const aggregator = new promClient.AggregatorRegistry();

if (cluster.isPrimary) {
  for (let i = 0; i < Number(process.env.WORKERS ?? 2); i++) cluster.fork();
  http
    .createServer(async (_req, res) => {
      try {
        const text = await aggregator.clusterMetrics();
        res.setHeader('content-type', aggregator.contentType);
        res.end(text);
      } catch (error) {
        res.statusCode = 500;
        res.end(String(error));
      }
    })
    .listen(Number(process.env.PORT), '127.0.0.1');
  process.on('SIGTERM', () => {
    for (const worker of Object.values(cluster.workers ?? {})) worker?.kill();
    process.exit(0);
  });
} else {
  registerSeries();
  process.on('SIGTERM', () => process.exit(0));
}
