import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { test } from 'node:test';
import { AggregatorRegistry, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { MetricJson } from '../lib/common/messages.js';
import { PROMETHEUS_CONTENT_TYPE, sumMetrics } from '../lib/metrics/cluster-aggregator.js';
import { libraryRegistry } from '../lib/metrics/library-metrics.js';
import { CounterRecord, GaugeRecord, HistogramRecord } from '../lib/metrics/metric-record.js';
import { PoolMetrics } from '../lib/primary/pool-metrics.js';
import type { PoolView } from '../lib/primary/worker-pool.js';
import { workerFamilies } from '../lib/worker/worker-metrics.js';
import { addressFromReady } from './helpers/http.js';
import { event, spawnFixture } from './helpers/process.js';
import { scrape, total } from './helpers/prometheus.js';

const BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];

/** The pool families as prom-client objects, defined as the primary defined them before they were records. */
function promClientPoolMetrics(pool: PoolView, registry: Registry): void {
  const registers = [registry];
  new Gauge({
    name: 'steward_workers',
    help: 'HTTP workers by state.',
    labelNames: ['state'],
    registers,
    collect() {
      const counts = { booting: 0, ready: 0, draining: 0 };
      for (const handle of pool.handles) if (handle.state !== 'dead') counts[handle.state]++;
      for (const state of ['booting', 'ready', 'draining'] as const) this.set({ state }, counts[state]);
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
  for (const cause of ['retired', 'crash', 'boot_failure', 'boot_timeout', 'drain_timeout', 'shutdown'])
    exits.inc({ cause }, 0);
  const boot = new Histogram({
    name: 'steward_worker_boot_seconds',
    help: 'Time from fork to ready (start function returned and the primary saw it listen).',
    buckets: BUCKETS,
    registers,
  });
  const drain = new Histogram({
    name: 'steward_worker_drain_seconds',
    help: 'Time from the drain order to the exit of a recycled worker.',
    buckets: BUCKETS,
    registers,
  });
  pool.on('worker:ready', (handle) => boot.observe(((handle.readyAt ?? 0) - handle.forkedAt) / 1000));
  pool.on('worker:recycled', (_handle, reason, drainMs) => {
    recycles.inc({ reason });
    drain.observe(drainMs / 1000);
  });
  pool.on('worker:exit', (_handle, cause) => exits.inc({ cause }));
}

function fakePool(): PoolView & { handles: { state: string; forkedAt: number; readyAt: number }[] } {
  return Object.assign(new EventEmitter(), {
    handles: [] as { state: string; forkedAt: number; readyAt: number }[],
    stopping: false,
    broadcastStatus() {},
  }) as never;
}

test('the pool records render exactly what prom-client gives for the same events', async () => {
  const pool = fakePool();
  const registry = new Registry();
  promClientPoolMetrics(pool, registry);
  const records = new PoolMetrics(pool);
  const emit = pool.emit.bind(pool) as (event: string, ...args: unknown[]) => boolean;
  // Boot times inside, on and beyond the buckets; a drain and exits of every kind.
  for (const [index, ms] of [10, 50, 700, 2_500, 500_000].entries()) {
    const handle = { id: index, state: 'ready', forkedAt: 1_000, readyAt: 1_000 + ms };
    pool.handles.push(handle);
    emit('worker:ready', handle);
  }
  pool.handles[1]!.state = 'draining';
  pool.handles[2]!.state = 'dead';
  emit('worker:recycled', pool.handles[2], 'max-age', 1_234);
  emit('worker:recycled', pool.handles[3], 'manual', 80);
  emit('worker:exit', pool.handles[2], 'retired');
  emit('worker:exit', pool.handles[4], 'crash');
  emit('worker:exit', pool.handles[4], 'crash');

  const expected = await registry.getMetricsAsJSON();
  assert.deepEqual(records.toJson(), expected);
  // And therefore the same exposition once aggregated, as a scrape does.
  const text = (parts: MetricJson[][]) => AggregatorRegistry.aggregate(parts).metrics();
  assert.equal(await text([records.toJson()]), await text([expected as MetricJson[]]));
});

test('labelled histograms, counters and gauges render as prom-client renders them', async () => {
  const registry = new Registry();
  const buckets = [0.01, 0.1, 1];
  const histogram = new Histogram({
    name: 'l_seconds',
    help: 'h',
    labelNames: ['name', 'outcome'],
    buckets,
    registers: [registry],
  });
  const counter = new Counter({ name: 'l_total', help: 'h', labelNames: ['worker'], registers: [registry] });
  const routes = [
    { worker: '2', limit: 4 },
    { worker: '1', limit: 8 },
  ];
  new Gauge({
    name: 'l_limit',
    help: 'h',
    labelNames: ['worker'],
    registers: [registry],
    collect() {
      this.reset();
      for (const route of routes) this.set({ worker: route.worker }, route.limit);
    },
  });
  const histogramRecord = new HistogramRecord({ name: 'l_seconds', help: 'h' }, buckets, true);
  const counterRecord = new CounterRecord({ name: 'l_total', help: 'h' });
  const gaugeRecord = new GaugeRecord({ name: 'l_limit', help: 'h' }, () =>
    routes.map((route) => ({ labels: { worker: route.worker }, value: route.limit })),
  );
  for (const [seconds, name, outcome] of [
    [0.005, 'a', 'processed'],
    [0.5, 'b', 'failed'],
    [5, 'a', 'processed'],
    [0.05, 'a', 'failed'],
  ] as const) {
    histogram.observe({ name, outcome }, seconds);
    histogramRecord.observe(seconds, { name, outcome });
    counter.inc({ worker: outcome });
    counterRecord.inc({ worker: outcome });
  }
  const records = [histogramRecord.toJson(), counterRecord.toJson(), gaugeRecord.toJson()];
  const expected = (await registry.getMetricsAsJSON()) as MetricJson[];
  assert.deepEqual(records, expected);
  const text = (parts: MetricJson[][]) => AggregatorRegistry.aggregate(parts).metrics();
  assert.equal(await text([records]), await text([expected]));
  // An unobserved labelled histogram has no series, as prom-client's has none.
  const empty = new HistogramRecord({ name: 'e_seconds', help: 'h' }, buckets, true);
  assert.deepEqual(empty.toJson().values, []);
});

test('retired totals are summed as prom-client sums them', async () => {
  const snapshot = async (count: number, seconds: number) => {
    const registry = new Registry();
    const counter = new Counter({
      name: 'r_total',
      help: 'h',
      labelNames: ['a', 'b'],
      registers: [registry],
    });
    const histogram = new Histogram({ name: 'r_seconds', help: 'h', buckets: [1, 2], registers: [registry] });
    counter.inc({ a: 'x', b: 'y' }, count);
    counter.inc({ b: 'y', a: String(count) }, 1);
    histogram.observe(seconds);
    return JSON.parse(JSON.stringify(await registry.getMetricsAsJSON())) as MetricJson[];
  };
  const parts = [await snapshot(3, 0.5), await snapshot(4, 1.5), await snapshot(3, 9)];
  const summed = sumMetrics(parts);
  const viaPromClient = AggregatorRegistry.aggregate(
    parts.map((metrics) => metrics.map((metric) => ({ ...metric, aggregator: 'sum' as const }))),
  );
  assert.equal(await AggregatorRegistry.aggregate([summed]).metrics(), await viaPromClient.metrics());
  assert.equal(PROMETHEUS_CONTENT_TYPE, Registry.PROMETHEUS_CONTENT_TYPE);
});

test('a primary loads prom-client only at the first scrape, which shows every steward family', async () => {
  const fixture = spawnFixture('lazy-metrics-app.js', {});
  try {
    const listening = await fixture.waitForLog(event('control:listening'), 15_000, 'control:listening');
    const port = listening.port as number;
    const checked = await fixture.waitForLog(event('fixture:modules'), 20_000, 'fixture:modules');
    assert.equal(checked.promClient, false, 'prom-client loaded before any scrape');
    const text = await fetch(`http://127.0.0.1:${port}/metrics`).then((reply) => reply.text());
    await fixture.waitForLog(event('fixture:prom-client-loaded'), 10_000, 'fixture:prom-client-loaded');
    const families = [...text.matchAll(/^# TYPE (steward_\S+) (\S+)$/gm)].map(
      (match) => `${match[1]} ${match[2]}`,
    );
    for (const family of [
      'steward_workers gauge',
      'steward_worker_recycles_total counter',
      'steward_worker_exits_total counter',
      'steward_worker_boot_seconds histogram',
      'steward_worker_drain_seconds histogram',
      'steward_scrape_errors_total counter',
      'steward_ipc_dropped_total counter',
      'steward_service_up gauge',
      'steward_events_total counter',
      'steward_worker_requests_total counter',
    ])
      assert.ok(families.includes(family), `${family} missing from:\n${families.join('\n')}`);
    const samples = await scrape(port);
    const ready = samples.find(
      (sample) => sample.name === 'steward_workers' && sample.labels.state === 'ready',
    );
    assert.equal(ready?.value, 1);
    const boots = samples.find((sample) => sample.name === 'steward_worker_boot_seconds_count');
    assert.equal(boots?.value, 1, 'the boot before the first scrape was counted');
    assert.ok(samples.some((sample) => sample.name === 'process_cpu_user_seconds_total'));
  } finally {
    fixture.killAll();
  }
});

test("a worker's plain families are prom-client's: same name, help, type, labels and values", async () => {
  const library = libraryRegistry('worker');
  const fromRegistry = (await library.getMetricsAsJSON()) as unknown as MetricJson[];
  const requests = new Registry();
  new Counter({
    name: 'steward_worker_requests_total',
    help: 'HTTP requests started on the servers of the HTTP workers.',
    registers: [requests],
  }).inc(0);
  const expected = [...((await requests.getMetricsAsJSON()) as unknown as MetricJson[]), ...fromRegistry];
  for (const plain of workerFamilies()) {
    const theirs = expected.find((metric) => metric.name === plain.name);
    assert.ok(theirs, `${plain.name} is not a prom-client family`);
    const shape = (metric: MetricJson) => ({
      name: metric.name,
      help: metric.help,
      type: metric.type,
      aggregator: metric.aggregator,
      labels: metric.values.map((sample) => Object.keys(sample.labels).sort().join(',')),
    });
    assert.deepEqual(shape(plain), shape(theirs));
    // CPU time moves between the two reads; every other value is the same count.
    if (!plain.name.startsWith('process_cpu_')) assert.deepEqual(plain, theirs);
  }
});

test('a worker loads prom-client only at the first scrape; its final report before any scrape is exact', async () => {
  const fixture = spawnFixture('lazy-worker-metrics-app.js', {});
  try {
    const listening = await fixture.waitForLog(event('control:listening'), 15_000, 'control:listening');
    const port = listening.port as number;
    const first = addressFromReady(await fixture.waitForLog(event('worker:ready'), 20_000, 'worker:ready'));
    const promClientIn = async (address: string) =>
      ((await (await fetch(`http://${address}/prom-client`)).json()) as { loaded: boolean }).loaded;
    assert.equal(await promClientIn(first), false, 'the worker loaded prom-client at boot');
    for (let i = 0; i < 9; i++) assert.equal((await fetch(`http://${first}/r`)).status, 200);
    assert.equal(await promClientIn(first), false, 'serving requests loaded prom-client');

    // Retired before any scrape: its eleven requests reach the primary through its plain final report.
    fixture.child.kill('SIGHUP');
    await fixture.waitForLog(event('cluster:rolling-restart:done'), 30_000, 'rolling restart');
    const readies = await fixture.waitForLogs(event('worker:ready'), 2, 5_000);
    const second = addressFromReady(readies[1]!);
    assert.equal(await promClientIn(second), false, 'the replacement loaded prom-client at boot');

    const text = await fetch(`http://127.0.0.1:${port}/metrics`).then((reply) => reply.text());
    assert.equal(await promClientIn(second), true, 'the scrape loaded prom-client in the worker');
    for (const family of [
      'steward_worker_requests_total counter',
      'steward_ipc_dropped_total counter',
      'process_cpu_user_seconds_total counter',
      'process_cpu_seconds_total counter',
      'nodejs_heap_size_used_bytes gauge',
      'nodejs_eventloop_lag_seconds gauge',
      'nodejs_gc_duration_seconds histogram',
    ])
      assert.ok(text.includes(`# TYPE ${family}\n`), `${family} missing from the scrape`);
    const samples = await scrape(port);
    assert.equal(total(samples, 'steward_worker_requests_total'), 13, 'eleven retired, two live');
    assert.ok(total(samples, 'nodejs_heap_size_used_bytes', { role: 'worker' }) > 0);
    // The retired worker's CPU, counted since its start, and the live worker's: over a boot's worth.
    assert.ok(total(samples, 'process_cpu_seconds_total', { role: 'worker' }) > 0.02);
  } finally {
    fixture.killAll();
  }
});

test('the services sibling loads prom-client at start with a control port, else at the first collect', async () => {
  const scraped = spawnFixture('lazy-sibling-metrics-app.js', { FIXTURE_CONTROL: '1' });
  try {
    const eager = await scraped.waitForLog(event('fixture:sibling-modules'), 20_000, 'sibling modules');
    assert.equal(
      eager.promClient,
      true,
      'a sibling that will be scraped observes its process from the start',
    );
  } finally {
    scraped.killAll();
  }

  const unscraped = spawnFixture('lazy-sibling-metrics-app.js', {});
  try {
    const lazy = await unscraped.waitForLog(event('fixture:sibling-modules'), 20_000, 'sibling modules');
    assert.equal(lazy.promClient, false, 'a sibling nothing scrapes loaded prom-client');
    // The primary collects through `supervisor.metrics` once the sibling counted its event: it loads then.
    const collected = await unscraped.waitForLog(event('fixture:scraped'), 15_000, 'fixture:scraped');
    assert.equal(collected.siblingProcessMetrics, true, "the sibling's process metrics in the collect");
    const loaded = await unscraped.waitForLogs(event('fixture:sibling-modules'), 2, 10_000);
    assert.equal(loaded[1]!.promClient, true);
  } finally {
    unscraped.killAll();
  }
});
