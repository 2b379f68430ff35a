// Hello world under cluster-steward, 2 workers; RECYCLE (JSON) holds the `recycle` options, absent for the
// baseline. Logs at info on stdout so the bench can count recycles.
import http from 'node:http';
import { steward } from 'cluster-steward';

const recycle = process.env.RECYCLE ? JSON.parse(process.env.RECYCLE) : undefined;

await steward({
  workers: 2,
  recycle,
  logger: { level: 'info' },
  worker: () =>
    http
      .createServer((_req, res) => {
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ pid: process.pid }));
      })
      .listen(Number(process.env.PORT), '127.0.0.1'),
});
