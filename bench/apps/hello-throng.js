// Hello world started with throng, 2 workers.
import http from 'node:http';
import throng from 'throng';

throng({
  count: Number(process.env.WORKERS ?? 2),
  worker: () =>
    http.createServer((_req, res) => res.end('hello world')).listen(Number(process.env.PORT), '127.0.0.1'),
});
