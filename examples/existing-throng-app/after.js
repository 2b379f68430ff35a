// The same application under cluster-steward: only the import line changed. steward() reads throng's
// option names (count, master, worker/start, grace, lifetime, signals) and calls worker(id, disconnect).
import http from 'node:http';
import { steward as throng } from 'cluster-steward';

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

throng({ count: Number(process.env.WEB_CONCURRENCY ?? 2), grace: 5000, master, worker });
