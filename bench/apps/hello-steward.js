// Hello world under cluster-steward, 2 workers (request counting and drain support active).
import http from 'node:http';
import { steward } from 'cluster-steward';

await steward({
  workers: Number(process.env.WORKERS ?? 2),
  logger: { level: 'warn' },
  worker: () =>
    http.createServer((_req, res) => res.end('hello world')).listen(Number(process.env.PORT), '127.0.0.1'),
});
