import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { ExitCause, PoolView } from './worker-pool.js';

const WORKER_STATES = ['booting', 'ready', 'draining'] as const;
const EXIT_CAUSES: readonly ExitCause[] = [
  'retired',
  'crash',
  'boot_failure',
  'boot_timeout',
  'drain_timeout',
  'shutdown',
];
const POOL_METRICS = [
  'steward_workers',
  'steward_worker_recycles_total',
  'steward_worker_exits_total',
  'steward_worker_boot_seconds',
  'steward_worker_drain_seconds',
];
/** Boot and drain durations: from a fast `listen()` to a slow application start or a long request. */
const LIFECYCLE_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];

/** Worker pool metrics of the primary: states read at scrape time, lifecycle counted from pool events. */
export function registerPoolMetrics(pool: PoolView, registry: Registry): void {
  // A new pool (a second supervisor in one process) replaces the figures of the previous one.
  for (const name of POOL_METRICS) registry.removeSingleMetric(name);
  const registers = [registry];
  new Gauge({
    name: 'steward_workers',
    help: 'HTTP workers by state.',
    labelNames: ['state'],
    registers,
    collect() {
      const counts = { booting: 0, ready: 0, draining: 0 };
      for (const handle of pool.handles) if (handle.state !== 'dead') counts[handle.state]++;
      for (const state of WORKER_STATES) this.set({ state }, counts[state]);
    },
  });
  const recycles = new Counter({
    name: 'steward_worker_recycles_total',
    help: 'Completed worker recycles (replacement ready, old worker drained and exited), by reason.',
    labelNames: ['reason'],
    registers,
  });
  const exits = new Counter({
    name: 'steward_worker_exits_total',
    help: 'Worker exits by cause.',
    labelNames: ['cause'],
    registers,
  });
  // Zero series from the start, so rate() and increase() see the first exit of each cause.
  for (const cause of EXIT_CAUSES) exits.inc({ cause }, 0);
  const boot = new Histogram({
    name: 'steward_worker_boot_seconds',
    help: 'Time from fork to ready (start function returned and the primary saw it listen).',
    buckets: LIFECYCLE_BUCKETS,
    registers,
  });
  const drain = new Histogram({
    name: 'steward_worker_drain_seconds',
    help: 'Time from the drain order to the exit of a recycled worker.',
    buckets: LIFECYCLE_BUCKETS,
    registers,
  });
  pool.on('worker:ready', (handle) =>
    boot.observe(((handle.readyAt ?? Date.now()) - handle.forkedAt) / 1000),
  );
  pool.on('worker:recycled', (_handle, reason, drainMs) => {
    recycles.inc({ reason });
    drain.observe(drainMs / 1000);
  });
  pool.on('worker:exit', (_handle, cause) => exits.inc({ cause }));
}
