// A demo-like app for bench/memory: Express workers that each hold APP_MB of application state
// (caches, loaded code), and a services module of listener-like services placed by PLACEMENT (none with
// PLACEMENT=none: a web-only cluster).
import http from 'node:http';
import { createRequire } from 'node:module';
import { getHeapSpaceStatistics } from 'node:v8';
import { steward } from 'cluster-steward';

const appMb = Number(process.env.APP_MB ?? 50);

const supervisor = await steward({
  workers: Number(process.env.WORKERS ?? 2),
  logger: { level: 'info' },
  ...(process.env.PLACEMENT === 'none'
    ? {}
    : {
        placement: process.env.PLACEMENT ?? 'sibling',
        services: new URL('./memory-services.js', import.meta.url),
      }),
  worker: async () => {
    const { default: express } = await import('express');
    // Filled, so every page is resident, as a warmed-up application's heap and caches are.
    const state = Buffer.alloc(appMb * 1024 * 1024, 7);
    const app = express();
    app.get('/', (_req, res) => res.json({ pid: process.pid, state: state.length }));
    return http.createServer(app).listen(Number(process.env.PORT), '127.0.0.1');
  },
});

// In the primary: whether prom-client is loaded once each worker is ready (the bench reports the last).
supervisor?.pool.on('worker:ready', () => {
  const cache = Object.keys(createRequire(import.meta.url).cache);
  const promClient = cache.some((path) => path.includes('/prom-client/'));
  console.log(JSON.stringify({ msg: 'bench:primary-modules', promClient }));
});

// In the primary: its committed young generation every 500 ms, so the bench can tell when V8 gave back
// what it grew at start (a few bytes of JSON, next to nothing beside what is measured).
if (supervisor) {
  setInterval(() => {
    const young = getHeapSpaceStatistics().find((space) => space.space_name === 'new_space');
    console.log(JSON.stringify({ msg: 'bench:primary-heap', newSpace: young?.space_size }));
  }, 500).unref();
}
