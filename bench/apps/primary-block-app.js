// Two workers answering their pid; the primary busy-loops for BLOCK_MS once BLOCK_FILE exists, as a
// service with `placement: 'primary'` that blocks its event loop would. The scheduling policy comes from
// NODE_CLUSTER_SCHED_POLICY (rr or none), which node:cluster reads when it loads.
import { existsSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { steward } from 'cluster-steward';

const blockMs = Number(process.env.BLOCK_MS ?? 4000);
const blockFile = process.env.BLOCK_FILE;

await steward({
  workers: 2,
  logger: { level: 'warn' },
  primary: () => {
    const timer = setInterval(() => {
      if (!existsSync(blockFile)) return;
      clearInterval(timer);
      writeFileSync(`${blockFile}.started`, String(Date.now()));
      const until = Date.now() + blockMs;
      while (Date.now() < until) {}
    }, 20);
  },
  worker: () =>
    http
      .createServer((_req, res) => res.end(JSON.stringify({ pid: process.pid })))
      .listen(Number(process.env.PORT), '127.0.0.1'),
});
