import type { MetricJson } from '../common/messages.js';
import { CounterRecord, GaugeRecord, HistogramRecord, setPrimaryFamilies } from '../metrics/metric-record.js';
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
/** Boot and drain durations: from a fast `listen()` to a slow application start or a long request. */
const LIFECYCLE_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];

/**
 * Worker pool metrics of the primary: states read at scrape time, lifecycle counted from pool events.
 * Plain numbers until a scrape renders them (see metric-record.ts): counted from the first fork even
 * though prom-client is loaded only by the first scrape.
 */
export class PoolMetrics {
  readonly #workers: GaugeRecord;
  readonly #recycles = new CounterRecord({
    name: 'steward_worker_recycles_total',
    help: 'Completed worker recycles (replacement ready, old worker drained and exited), by reason.',
  });
  readonly #exits = new CounterRecord({ name: 'steward_worker_exits_total', help: 'Worker exits by cause.' });
  readonly #boot = new HistogramRecord(
    {
      name: 'steward_worker_boot_seconds',
      help: 'Time from fork to ready (start function returned and the primary saw it listen).',
    },
    LIFECYCLE_BUCKETS,
  );
  readonly #drain = new HistogramRecord(
    {
      name: 'steward_worker_drain_seconds',
      help: 'Time from the drain order to the exit of a recycled worker.',
    },
    LIFECYCLE_BUCKETS,
  );

  constructor(pool: PoolView) {
    this.#workers = new GaugeRecord({ name: 'steward_workers', help: 'HTTP workers by state.' }, () => {
      const counts = { booting: 0, ready: 0, draining: 0 };
      for (const handle of pool.handles) if (handle.state !== 'dead') counts[handle.state]++;
      return WORKER_STATES.map((state) => ({ labels: { state }, value: counts[state] }));
    });
    // Zero series from the start, so rate() and increase() see the first exit of each cause.
    for (const cause of EXIT_CAUSES) this.#exits.inc({ cause }, 0);
    pool.on('worker:ready', (handle) =>
      this.#boot.observe(((handle.readyAt ?? Date.now()) - handle.forkedAt) / 1000),
    );
    pool.on('worker:recycled', (_handle, reason, drainMs) => {
      this.#recycles.inc({ reason });
      this.#drain.observe(drainMs / 1000);
    });
    pool.on('worker:exit', (_handle, cause) => this.#exits.inc({ cause }));
    // A new pool (a second supervisor in one process) replaces the figures of the previous one.
    setPrimaryFamilies('pool', () => this.toJson());
  }

  /** The pool families as prom-client's `getMetricsAsJSON()` would give them. */
  toJson(): MetricJson[] {
    return [
      this.#workers.toJson(),
      this.#recycles.toJson(),
      this.#exits.toJson(),
      this.#boot.toJson(),
      this.#drain.toJson(),
    ];
  }
}
