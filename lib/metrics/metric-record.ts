import type { MetricJson } from '../common/messages.js';

/**
 * Plain-number metrics of the primary, rendered in prom-client's JSON form only when a scrape asks.
 * The primary counts worker lifecycles from its first fork, but most primaries are never scraped: keeping
 * these as numbers spares every primary the memory of prom-client (its objects, its dependencies), which
 * is loaded at the first scrape only. Each `toJson()` is exactly what prom-client's `getMetricsAsJSON()`
 * gives for the same family, so the exposition does not change.
 */
interface FamilyInfo {
  name: string;
  help: string;
}

type Labels = Record<string, string>;
/** One sample as prom-client's JSON carries it (histogram samples name their series in `metricName`). */
export interface SampleJson {
  value: number;
  labels: Record<string, string | number>;
  metricName?: string;
  exemplar?: null;
}

/** The key of one series among a family's, as prom-client's `hashObject` builds it. */
export function labelHash(labels: Readonly<Record<string, unknown>>): string {
  let hash = '';
  for (const key of Object.keys(labels).sort()) {
    const value = labels[key];
    if (value !== undefined) hash += `${key}:${value},`;
  }
  return hash;
}

/** A counter with labels, series in the order they were first counted (as prom-client keeps them). */
export class CounterRecord {
  readonly #info: FamilyInfo;
  readonly #series = new Map<string, { labels: Labels; value: number }>();

  constructor(info: FamilyInfo) {
    this.#info = info;
  }

  inc(labels: Labels, value = 1): void {
    const key = labelHash(labels);
    const series = this.#series.get(key);
    if (series) series.value += value;
    else this.#series.set(key, { labels: { ...labels }, value });
  }

  toJson(): MetricJson {
    const values = [...this.#series.values()].map(({ labels, value }) => ({ value, labels: { ...labels } }));
    return family(this.#info, 'counter', values);
  }
}

/** A gauge whose series are read at scrape time, in the order `read` lists them. */
export class GaugeRecord {
  readonly #info: FamilyInfo;
  readonly #read: () => { labels: Labels; value: number }[];

  constructor(info: FamilyInfo, read: () => { labels: Labels; value: number }[]) {
    this.#info = info;
    this.#read = read;
  }

  toJson(): MetricJson {
    const values = this.#read().map(({ labels, value }) => ({ value, labels: { ...labels } }));
    return family(this.#info, 'gauge', values);
  }
}

/** One series of a histogram, observed without naming its labels again. */
export interface HistogramSeries {
  observe(value: number): void;
}

interface Series {
  labels: Labels;
  counts: number[];
  sum: number;
  count: number;
}

/** A histogram: per series (labels), counts per bucket (not cumulative), their sum and count. */
export class HistogramRecord {
  readonly #info: FamilyInfo;
  readonly #bounds: readonly number[];
  readonly #series = new Map<string, Series>();

  /** Without `labelled`, the one series exists (at zero) from the start, as prom-client's does. */
  constructor(info: FamilyInfo, bounds: readonly number[], labelled = false) {
    this.#info = info;
    this.#bounds = bounds;
    if (!labelled) this.#seriesOf({});
  }

  observe(value: number, labels: Labels = {}): void {
    this.#observeInto(this.#seriesOf(labels), value);
  }

  /**
   * The series of `labels` (created at zero if new) as an observer, for a caller that observes the same
   * labels once per event: it keeps the observer and skips hashing the labels every time.
   */
  series(labels: Labels): HistogramSeries {
    const series = this.#seriesOf(labels);
    return { observe: (value) => this.#observeInto(series, value) };
  }

  #observeInto(series: Series, value: number): void {
    const bounds = this.#bounds;
    for (let index = 0; index < bounds.length; index++) {
      if (value <= bounds[index]!) {
        series.counts[index]!++;
        break;
      }
    }
    series.sum += value;
    series.count++;
  }

  #seriesOf(labels: Labels): Series {
    const key = labelHash(labels);
    let series = this.#series.get(key);
    if (!series) {
      series = { labels: { ...labels }, counts: this.#bounds.map(() => 0), sum: 0, count: 0 };
      this.#series.set(key, series);
    }
    return series;
  }

  toJson(): MetricJson {
    const bucket = `${this.#info.name}_bucket`;
    const values: SampleJson[] = [];
    for (const { labels, counts, sum, count } of this.#series.values()) {
      let cumulative = 0;
      // `le` first, then the series' labels: the order prom-client writes them in.
      this.#bounds.forEach((le, index) => {
        cumulative += counts[index]!;
        values.push({ labels: { le, ...labels }, value: cumulative, metricName: bucket, exemplar: null });
      });
      values.push(
        { labels: { le: '+Inf', ...labels }, value: count, metricName: bucket, exemplar: null },
        { labels: { ...labels }, value: sum, metricName: `${this.#info.name}_sum`, exemplar: undefined },
        { labels: { ...labels }, value: count, metricName: `${this.#info.name}_count`, exemplar: undefined },
      );
    }
    return family(this.#info, 'histogram', values);
  }
}

/** Families of the primary's own components (by family group), added to its library metrics at each scrape. */
const primaryFamilies = new Map<string, () => MetricJson[]>();

/**
 * Adds `render`'s families to every scrape of this primary; a later call with the same `group` (a second
 * supervisor in one process) replaces the earlier one.
 */
export function setPrimaryFamilies(group: string, render: () => MetricJson[]): void {
  primaryFamilies.set(group, render);
}

export function renderPrimaryFamilies(): MetricJson[] {
  return [...primaryFamilies.values()].flatMap((render) => render());
}

function family(info: FamilyInfo, type: string, values: SampleJson[]): MetricJson {
  return { name: info.name, help: info.help, type, values, aggregator: 'sum' } as unknown as MetricJson;
}
