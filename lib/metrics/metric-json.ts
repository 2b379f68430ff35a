import type { MetricJson } from './library-metrics.js';

/** Aggregators `AggregatorRegistry.aggregate` knows; any other name would make it throw. */
const AGGREGATORS = new Set(['sum', 'first', 'omit', 'average', 'min', 'max']);
const TYPES = new Set(['counter', 'gauge', 'histogram', 'summary']);
const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
/** Far above any real registry; a bound on what one process can make the primary hold. */
const MAX_FAMILIES = 10_000;
const MAX_SERIES_PER_FAMILY = 1_000_000;

/**
 * Checks metrics received from another process before they are merged: IPC payloads are never trusted,
 * and one malformed family would make prom-client's aggregation throw and fail the whole scrape.
 * A `null` value is the JSON form of NaN and is restored as NaN.
 */
export function isMetricList(value: unknown): value is MetricJson[] {
  if (!Array.isArray(value) || value.length > MAX_FAMILIES) return false;
  // Names repeat in every sample (`le`, `_bucket`): each distinct one is matched against its pattern once.
  const names = new NameCheck();
  return value.every((family) => isMetricFamily(family, names));
}

class NameCheck {
  readonly #metricNames = new Set<string>();
  readonly #labelNames = new Set<string>();

  metric(name: unknown): boolean {
    return typeof name === 'string' && check(this.#metricNames, METRIC_NAME, name);
  }

  label(name: string): boolean {
    return check(this.#labelNames, LABEL_NAME, name);
  }
}

function check(seen: Set<string>, pattern: RegExp, name: string): boolean {
  if (seen.has(name)) return true;
  if (!pattern.test(name)) return false;
  seen.add(name);
  return true;
}

function isMetricFamily(value: unknown, names: NameCheck): boolean {
  if (!isRecord(value)) return false;
  const { name, help, type, aggregator, values } = value;
  if (!names.metric(name) || typeof help !== 'string') return false;
  if (typeof type !== 'string' || !TYPES.has(type)) return false;
  if (typeof aggregator !== 'string' || !AGGREGATORS.has(aggregator)) return false;
  if (!Array.isArray(values) || values.length > MAX_SERIES_PER_FAMILY) return false;
  for (const sample of values) if (!isSample(sample, names)) return false;
  return true;
}

function isSample(value: unknown, names: NameCheck): boolean {
  if (!isRecord(value)) return false;
  if (value.value === null) value.value = Number.NaN;
  else if (typeof value.value !== 'number') return false;
  if (value.metricName !== undefined && !names.metric(value.metricName)) return false;
  const labels = value.labels;
  if (labels === undefined) return true;
  if (!isRecord(labels)) return false;
  for (const key in labels) {
    const label = labels[key];
    // Label names are written unescaped by prom-client: a stray quote would corrupt the exposition.
    if (!names.label(key) || (typeof label !== 'string' && typeof label !== 'number')) return false;
  }
  return true;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
