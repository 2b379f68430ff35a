// bench/valve.ts: hello world in 2 workers that also handle the dispatched `burn` events (2 ms of CPU
// each). VALVE_MODE=fixed turns the valve off (every worker takes the listener's concurrency). APP_MB: the
// application state each worker holds (bench/valve-memory.ts), filled so every page is resident.
import http from 'node:http';
import { performance } from 'node:perf_hooks';
import { steward } from 'cluster-steward';

const burnMs = Number(process.env.VALVE_BURN_MS ?? 2);

await steward({
  workers: Number(process.env.WORKERS ?? 2),
  logger: { level: process.env.VALVE_LOG_LEVEL ?? 'warn' },
  grace: 5000,
  services: new URL('./valve-services.js', import.meta.url),
  ...(process.env.VALVE_MODE === 'fixed' ? { valve: false } : {}),
  worker: (_id, _disconnect, ctx) => {
    const state = Buffer.alloc(Number(process.env.APP_MB ?? 0) * 1024 * 1024, 7);
    ctx.handle('burn', () => {
      const until = performance.now() + burnMs;
      while (performance.now() < until);
    });
    const body = JSON.stringify({ pid: process.pid, state: state.length });
    // The state stays referenced, as a live application's is.
    return http
      .createServer((_req, res) => res.end(state.length > 0 ? body : body))
      .listen(Number(process.env.PORT), '127.0.0.1');
  },
});
