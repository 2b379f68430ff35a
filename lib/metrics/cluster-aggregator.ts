import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { IpcChannel } from '../common/ipc.js';
import type { MetricJson } from '../common/messages.js';
import { coerceError } from '../errors.js';
import type { LocalRole } from './library-metrics.js';
import { isMetricList } from './metric-json.js';
import { CounterRecord, labelHash, renderPrimaryFamilies, type SampleJson } from './metric-record.js';

/** prom-client's exposition content type (`Registry.PROMETHEUS_CONTENT_TYPE`), known before it loads. */
export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

/** One process the primary collects from over IPC. */
export interface MetricsSource {
  /** Identity of the process (its handle); once retired, its last figures are carried forward. */
  readonly token: object;
  readonly role: LocalRole;
  /** For logs: "worker 3", "services sibling". */
  readonly name: string;
  collect(timeoutMs: number): Promise<unknown>;
  /**
   * True when the process is on its way out on purpose (a recycle, a shutdown): a collect it cannot
   * answer because it exits meanwhile is not a scrape error; its final report carries its figures.
   */
  retiring?(): boolean;
}

export interface ClusterMetricsOptions {
  /** The processes to ask, read at the start of each scrape. */
  sources: () => MetricsSource[];
  /** Per-process collect timeout in ms. */
  timeout: number;
  /** The application's registry in the primary (prom-client's global one when undefined). */
  register: Registry | undefined;
  logger: Logger;
  /**
   * Loads the modules whose families join this process's library registry, awaited before each scrape
   * (the registry and prom-client are created at the first one).
   */
  collectors?: () => Promise<unknown>;
}

/**
 * Cluster-wide metrics for one scrape: the primary's own, every live process's (collected in parallel,
 * each within `timeout`), and the counters and histograms of processes that have exited, merged with
 * prom-client's `AggregatorRegistry.aggregate`.
 *
 * Monotonic totals: each process contributes, in order of preference, its exact final snapshot (taken
 * when a worker finished draining), else the figures of its last successful collect. A process that
 * fails a collect contributes its last counters and histograms (its gauges are left out) and counts as
 * a scrape error; once it exits, the same figures move into the retired totals exactly once.
 */
export class ClusterMetrics {
  readonly #options: ClusterMetricsOptions;
  readonly #scrapeErrors = new CounterRecord({
    name: 'steward_scrape_errors_total',
    help: 'Processes left out of a scrape because they did not answer in time, died or sent invalid metrics.',
  });
  /** Summed counters and histograms of every retired process. Replaced, never mutated. */
  #retired: MetricJson[] = [];
  readonly #retiredTokens = new WeakSet<object>();
  readonly #lastKnown = new WeakMap<object, MetricJson[]>();
  readonly #finals = new WeakMap<object, MetricJson[]>();
  readonly #reporting = new WeakSet<IpcChannel>();
  /** Tokens listed by the previous scrape: one missing now has exited (the sibling after a restart). */
  #listed = new Set<object>();
  #inFlight: Promise<string> | undefined;

  constructor(options: ClusterMetricsOptions) {
    this.#options = options;
    for (const role of ['worker', 'sibling'] as const) this.#scrapeErrors.inc({ role }, 0);
  }

  get contentType(): string {
    return PROMETHEUS_CONTENT_TYPE;
  }

  /** Takes the final report the process behind `channel` sends once it has stopped, right before exiting. */
  acceptFinalReport(token: object, channel: IpcChannel): void {
    // Idempotent: a second handler would send a second reply, which the peer would drop as unexpected.
    if (this.#reporting.has(channel)) return;
    this.#reporting.add(channel);
    channel.handle('metrics:final', (message) => this.recordFinal(token, message.metrics));
  }

  /** Stores the exact final snapshot a process sent right before exiting. Returns false if invalid. */
  recordFinal(token: object, metrics: unknown): boolean {
    if (this.#retiredTokens.has(token) || !isMetricList(metrics)) return false;
    this.#finals.set(token, cumulativeOnly(metrics));
    return true;
  }

  /** The process has exited: its final (or last known) counters and histograms join the retired totals. */
  retire(token: object): void {
    if (this.#retiredTokens.has(token)) return;
    this.#retiredTokens.add(token);
    const snapshot = this.#finals.get(token) ?? this.#lastKnown.get(token);
    this.#finals.delete(token);
    this.#lastKnown.delete(token);
    if (snapshot && snapshot.length > 0) this.#retired = sumMetrics([this.#retired, snapshot]);
  }

  /**
   * The Prometheus text of the whole cluster. Concurrent callers share one collection, so a burst of
   * scrapes never multiplies the IPC traffic, and two collections never race on the same worker.
   */
  scrape(): Promise<string> {
    this.#inFlight ??= this.#scrape().finally(() => {
      this.#inFlight = undefined;
    });
    return this.#inFlight;
  }

  async #scrape(): Promise<string> {
    const sources = this.#options.sources();
    this.#retireVanished(sources);
    const collected = await Promise.all(sources.map((source) => this.#collect(source)));
    // prom-client and the library registry load with the first scrape, not with the primary.
    const [{ AggregatorRegistry }, { collectLocalMetrics }] = await Promise.all([
      import('prom-client'),
      import('./local-metrics.js'),
      this.#options.collectors?.(),
    ]);
    // After the remote collects, so this scrape already shows their errors.
    const local = await collectLocalMetrics('primary', this.#options.register);
    // The primary's own families, kept as plain numbers (see metric-record.ts).
    local.push(...renderPrimaryFamilies());
    local.push(this.#scrapeErrors.toJson());
    // From here to the merge nothing awaits: the retired totals and the live set are read at one instant,
    // so a process that exited during the collect is counted once, through its retired snapshot.
    const parts: MetricJson[][] = [local];
    sources.forEach((source, index) => {
      const metrics = collected[index];
      if (metrics && !this.#retiredTokens.has(source.token)) parts.push(metrics);
    });
    parts.push(this.#retired);
    return AggregatorRegistry.aggregate(parts).metrics();
  }

  #retireVanished(sources: MetricsSource[]): void {
    const listed = new Set(sources.map((source) => source.token));
    for (const token of this.#listed) if (!listed.has(token)) this.retire(token);
    this.#listed = listed;
  }

  async #collect(source: MetricsSource): Promise<MetricJson[] | undefined> {
    let failure: string;
    try {
      const metrics = await source.collect(this.#options.timeout);
      if (isMetricList(metrics)) {
        if (!this.#retiredTokens.has(source.token))
          this.#lastKnown.set(source.token, cumulativeOnly(metrics));
        return metrics;
      }
      failure = 'invalid metrics';
    } catch (error) {
      failure = coerceError(error).message;
    }
    if (source.retiring?.()) {
      this.#options.logger.debug(
        { source: source.name, sourceRole: source.role, error: failure },
        'metrics:collect:retired',
      );
      return this.#lastKnown.get(source.token);
    }
    this.#scrapeErrors.inc({ role: source.role });
    this.#options.logger.warn(
      { source: source.name, sourceRole: source.role, error: failure },
      'metrics:collect:failed',
    );
    return this.#lastKnown.get(source.token);
  }
}

/** Counters and histograms: what can be carried forward (gauges of a dead process mean nothing). */
function cumulativeOnly(metrics: MetricJson[]): MetricJson[] {
  return metrics.filter((metric) => {
    const type = String(metric.type);
    return type === 'counter' || type === 'histogram';
  });
}

/**
 * Sums metric lists series by series (by name, metric name and labels), synchronously, as prom-client's
 * `AggregatorRegistry.aggregate` does with the `sum` aggregator; done here so a worker exit does not load
 * prom-client into a primary that is never scraped.
 */
export function sumMetrics(parts: MetricJson[][]): MetricJson[] {
  const families = new Map<string, { metric: MetricJson; series: Map<string, SampleJson> }>();
  for (const metrics of parts) {
    for (const metric of metrics) {
      let family = families.get(metric.name);
      if (!family) {
        const { name, help, type } = metric;
        const summed = { name, help, type, aggregator: 'sum', values: [] };
        family = { metric: summed as unknown as MetricJson, series: new Map() };
        families.set(metric.name, family);
      }
      for (const value of metric.values as SampleJson[]) {
        const key = `${value.metricName}_${labelHash(value.labels)}`;
        const series = family.series.get(key);
        if (series) series.value += value.value;
        else {
          const summed: SampleJson = { value: value.value, labels: value.labels };
          if (value.metricName) summed.metricName = value.metricName;
          family.series.set(key, summed);
        }
      }
    }
  }
  return [...families.values()].map(
    ({ metric, series }) => ({ ...metric, values: [...series.values()] }) as unknown as MetricJson,
  );
}
