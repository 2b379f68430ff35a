// The same application still forked by throng, with cluster-steward added through the adapter:
// request counting, drain-then-refork recycling and a graceful shutdown (see README.md for the cost).
import http from 'node:http';
import { forThrong } from 'cluster-steward/throng';
import throng from 'throng';

const port = Number(process.env.PORT ?? 3000);

function master() {
  console.log(`primary ${process.pid} starting ${process.env.WEB_CONCURRENCY ?? 2} workers`);
}

function worker(id) {
  const server = http.createServer((_request, response) => {
    response.setHeader('content-type', 'text/plain');
    response.end(`hello from worker ${id} (pid ${process.pid})\n`);
  });
  server.listen(port, () => console.log(`worker ${id} listening on ${port}`));
}

throng(
  forThrong({
    count: Number(process.env.WEB_CONCURRENCY ?? 2),
    grace: 5000,
    master,
    worker,
    recycle: { maxRequests: Number(process.env.MAX_REQUESTS ?? 10_000) },
  }),
);
