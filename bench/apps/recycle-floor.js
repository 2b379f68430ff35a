// The floor of recycling: bare node:cluster with the hello world of recycle-app.js. AGE (ms, absent: no
// recycling) after a worker listens, the primary forks its replacement, waits for `listening`, then tells
// the old worker to close: it answers what still arrives with `Connection: close` and exits once its
// connections are gone. Prints the pino-like lines bench/recycle.ts counts (worker:ready,
// worker:recycle:start/done).
import cluster from 'node:cluster';
import http from 'node:http';

const age = Number(process.env.AGE ?? 0);
const print = (msg, fields = {}) => process.stdout.write(`${JSON.stringify({ msg, ...fields })}\n`);

if (cluster.isPrimary) {
  let stopping = false;
  const start = (old) => {
    const forkedAt = Date.now();
    const worker = cluster.fork();
    worker.once('listening', () => {
      print('worker:ready', { worker: worker.id });
      if (old) old.send('close');
      if (age > 0) setTimeout(() => replace(worker), age);
    });
    worker.once('exit', (code) => {
      if (worker.retiring)
        print('worker:recycle:done', { code, drainMs: Date.now() - worker.retiring, bootMs: 0 });
    });
    worker.forkedAt = forkedAt;
  };
  const replace = (worker) => {
    if (stopping) return;
    print('worker:recycle:start', { worker: worker.id });
    worker.retiring = Date.now();
    start(worker);
  };
  start();
  start();
  process.on('SIGTERM', () => {
    stopping = true;
    for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill('SIGTERM');
    process.exit(0);
  });
} else {
  let closing = false;
  const server = http
    .createServer((_req, res) => {
      if (closing) res.setHeader('connection', 'close');
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ pid: process.pid }));
    })
    .listen(Number(process.env.PORT), '127.0.0.1');
  process.on('message', (message) => {
    if (message !== 'close') return;
    closing = true;
    server.close(() => process.exit(0));
  });
}
