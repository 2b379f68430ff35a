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
  return value.every(isMetricFamily);
}

function isMetricFamily(value: unknown): boolean {
  if (!isRecord(value)) return false;
  const { name, help, type, aggregator, values } = value;
  if (typeof name !== 'string' || !METRIC_NAME.test(name) || typeof help !== 'string') return false;
  if (typeof type !== 'string' || !TYPES.has(type)) return false;
  if (typeof aggregator !== 'string' || !AGGREGATORS.has(aggregator)) return false;
  if (!Array.isArray(values) || values.length > MAX_SERIES_PER_FAMILY) return false;
  return values.every(isSample);
}

function isSample(value: unknown): boolean {
  if (!isRecord(value)) return false;
  if (value.value === null) value.value = Number.NaN;
  else if (typeof value.value !== 'number') return false;
  if (
    value.metricName !== undefined &&
    (typeof value.metricName !== 'string' || !METRIC_NAME.test(value.metricName))
  )
    return false;
  const labels = value.labels;
  if (labels === undefined) return true;
  if (!isRecord(labels)) return false;
  for (const key in labels) {
    const label = labels[key];
    // Label names are written unescaped by prom-client: a stray quote would corrupt the exposition.
    if (!LABEL_NAME.test(key) || (typeof label !== 'string' && typeof label !== 'number')) return false;
  }
  return true;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
