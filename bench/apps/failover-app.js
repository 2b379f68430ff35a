// One HTTP worker and the listener-like services of SERVICES (default memory-services.js) in a sibling,
// for bench/failover.
// `restart.period` is short so that each kill, spaced beyond it, is a first death (re-forked at once).
import http from 'node:http';
import { steward } from 'cluster-steward';

await steward({
  workers: 1,
  logger: { level: 'info' },
  statusInterval: 500,
  restart: { period: 1_000 },
  services: new URL(`./${process.env.SERVICES ?? 'memory-services.js'}`, import.meta.url),
  worker: () => http.createServer((_req, res) => res.end('ok')).listen(Number(process.env.PORT), '127.0.0.1'),
});
