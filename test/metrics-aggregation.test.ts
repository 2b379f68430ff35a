import assert from 'node:assert/strict';
import { test } from 'node:test';
import pino from 'pino';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { StewardError } from '../lib/errors.js';
import { ClusterMetrics, type MetricsSource } from '../lib/metrics/cluster-aggregator.js';
import { resolveOptions } from '../lib/options.js';
import { parseExposition, total } from './helpers/prometheus.js';

const logger = pino({ level: 'silent' });

/** A process stand-in: a real prom-client registry whose JSON crosses a JSON round trip, as over IPC. */
class FakeProcess {
  readonly registry = new Registry();
  readonly requests = new Counter({ name: 't_requests_total', help: 'h', registers: [this.registry] });
  readonly seconds = new Histogram({
    name: 't_seconds',
    help: 'h',
    buckets: [1],
    registers: [this.registry],
  });
  readonly inFlight = new Gauge({ name: 't_in_flight', help: 'h', registers: [this.registry] });
  answer: 'ok' | 'hang' | 'garbage' = 'ok';
  collects = 0;

  source(name: string): MetricsSource {
    return {
      token: this,
      role: 'worker',
      name,
      collect: async (timeout) => {
        this.collects++;
        if (this.answer === 'garbage') return [{ name: 'bad name', values: 'nope' }];
        if (this.answer === 'hang')
          return new Promise((_, reject) => setTimeout(() => reject(new Error('timeout')), timeout));
        return JSON.parse(JSON.stringify(await this.registry.getMetricsAsJSON()));
      },
    };
  }

  serve(count: number): void {
    this.requests.inc(count);
    for (let i = 0; i < count; i++) this.seconds.observe(0.5);
    this.inFlight.set(3);
  }

  async finalSnapshot(): Promise<unknown> {
    return JSON.parse(JSON.stringify(await this.registry.getMetricsAsJSON()));
  }
}

function cluster(processes: () => MetricsSource[]) {
  const metrics = new ClusterMetrics({ sources: processes, timeout: 50, register: new Registry(), logger });
  return {
    metrics,
    scrape: async () => parseExposition(await metrics.scrape()),
  };
}

test('a process that answers garbage or too late is left out; its last counters stand, its gauges do not', async () => {
  const a = new FakeProcess();
  const b = new FakeProcess();
  const { scrape } = cluster(() => [a.source('a'), b.source('b')]);
  a.serve(5);
  b.serve(7);
  let samples = await scrape();
  assert.equal(total(samples, 't_requests_total'), 12);
  assert.equal(total(samples, 't_in_flight'), 6);
  const errorsBefore = total(samples, 'steward_scrape_errors_total', { role: 'worker' });
  for (const answer of ['garbage', 'hang'] as const) {
    b.answer = answer;
    b.serve(1);
    a.serve(1);
    samples = await scrape();
    assert.equal(total(samples, 't_seconds_count'), total(samples, 't_requests_total'));
    assert.equal(total(samples, 't_in_flight'), 3, `only a's gauge (${answer})`);
  }
  assert.equal(total(samples, 't_requests_total'), 7 + 7, "a's fresh 7 plus b's last known 7");
  assert.equal(total(samples, 'steward_scrape_errors_total', { role: 'worker' }), errorsBefore + 2);
  b.answer = 'ok';
  assert.equal(total(await scrape(), 't_requests_total'), 7 + 9);
});

test('a retired process is carried forward once: its final snapshot, counters and histograms only', async () => {
  const a = new FakeProcess();
  const b = new FakeProcess();
  let live = [a, b];
  const { metrics, scrape } = cluster(() => live.map((p, i) => p.source(`p${i}`)));
  a.serve(3);
  b.serve(4);
  assert.equal(total(await scrape(), 't_requests_total'), 7);
  // b serves more after its last scrape; its final report has everything.
  b.serve(6);
  assert.equal(metrics.recordFinal(b, await b.finalSnapshot()), true);
  assert.equal(metrics.recordFinal(b, [{ garbage: true }]), false, 'an invalid final is refused');
  live = [a];
  metrics.retire(b);
  metrics.retire(b);
  let samples = await scrape();
  assert.equal(total(samples, 't_requests_total'), 13);
  assert.equal(total(samples, 't_seconds_count'), 13);
  assert.equal(total(samples, 't_seconds_bucket', { le: '1' }), 13);
  assert.equal(total(samples, 't_in_flight'), 3, "the dead process's gauge is gone");
  // A process that vanishes without a final report (killed) keeps its last scraped figures.
  a.serve(1);
  samples = await scrape();
  live = [];
  a.serve(100);
  samples = await scrape();
  assert.equal(total(samples, 't_requests_total'), 10 + 4);
});

test('concurrent scrapes share one collection', async () => {
  const a = new FakeProcess();
  const { metrics } = cluster(() => [a.source('a')]);
  const texts = await Promise.all([metrics.scrape(), metrics.scrape(), metrics.scrape()]);
  assert.equal(a.collects, 1);
  assert.equal(new Set(texts).size, 1);
  await metrics.scrape();
  assert.equal(a.collects, 2);
});

test('control.metricsTimeout is validated and accepts durations', () => {
  const worker = () => undefined;
  assert.equal(resolveOptions({ worker, control: { port: 0 } }).control?.metricsTimeout, 2_000);
  assert.equal(
    resolveOptions({ worker, control: { port: 0, metricsTimeout: '5s' } }).control?.metricsTimeout,
    5_000,
  );
  for (const bad of [5, -1, 'soon', 1.5]) {
    assert.throws(
      () => resolveOptions({ worker, control: { port: 0, metricsTimeout: bad } }),
      (error: StewardError) =>
        error.code === 'STEWARD_ERR_INVALID_OPTION' &&
        /`control\.metricsTimeout`.*>= 10 ms/.test(error.message),
    );
  }
});
