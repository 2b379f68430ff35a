// Baseline: hello world on bare node:cluster, 2 workers, re-forked on exit.
import cluster from 'node:cluster';
import http from 'node:http';

const workers = Number(process.env.WORKERS ?? 2);
if (cluster.isPrimary) {
  for (let i = 0; i < workers; i++) cluster.fork();
  cluster.on('exit', (_worker, _code, signal) => signal !== 'SIGTERM' && cluster.fork());
  process.on('SIGTERM', () => {
    for (const worker of Object.values(cluster.workers ?? {})) worker?.kill('SIGTERM');
    process.exit(0);
  });
} else {
  http.createServer((_req, res) => res.end('hello world')).listen(Number(process.env.PORT), '127.0.0.1');
}
