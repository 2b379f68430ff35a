import promClient, { type Registry } from 'prom-client';
import { type LocalRole, libraryRegistry, type MetricJson } from './library-metrics.js';

export type { LocalRole, MetricJson } from './library-metrics.js';

/**
 * The metrics of this process as prom-client JSON: the library's registry (`steward_` metrics and process
 * metrics labelled by role) and the application's (prom-client's global registry unless one was passed).
 * Sent to the primary on `metrics:collect`. When both registries hold a metric of the same name (an
 * application that also calls `collectDefaultMetrics()`), the library's is kept: two families of one
 * name would be merged into one and double counted.
 */
export async function collectLocalMetrics(
  role: LocalRole,
  register: Registry | undefined,
): Promise<MetricJson[]> {
  const library = libraryRegistry(role);
  const application = register ?? promClient.register;
  const [own, theirs] = await Promise.all([
    library.getMetricsAsJSON() as Promise<MetricJson[]>,
    application === library ? [] : (application.getMetricsAsJSON() as Promise<MetricJson[]>),
  ]);
  if (theirs.length === 0) return own;
  const names = new Set(own.map((metric) => metric.name));
  for (const metric of theirs) if (!names.has(metric.name)) own.push(metric);
  return own;
}
