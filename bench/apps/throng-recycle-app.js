// Hello world, 2 workers, forked by throng through forThrong (FORKER=throng) or by steward() (FORKER=steward);
// RECYCLE (JSON) holds the `recycle` options, absent for the baseline. Logs at info on stdout.
import http from 'node:http';
import { steward } from 'cluster-steward';
import { forThrong } from 'cluster-steward/throng';
import throng from 'throng';

const recycle = process.env.RECYCLE ? JSON.parse(process.env.RECYCLE) : undefined;
const options = {
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
};

if (process.env.FORKER === 'throng') await throng(forThrong(options));
else await steward(options);
