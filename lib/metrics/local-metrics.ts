import promClient, { type MetricObjectWithValues, type MetricValue, type Registry } from 'prom-client';

export type LocalRole = 'primary' | 'worker' | 'sibling';

/**
 * The metrics of this process as prom-client JSON, from the library's registry and the application's
 * (prom-client's global registry unless one was passed). Sent to the primary on `metrics:collect`.
 */
export async function collectLocalMetrics(
  _role: LocalRole,
  register: Registry | undefined,
): Promise<MetricObjectWithValues<MetricValue<string>>[]> {
  const registry = register ?? promClient.register;
  return (await registry.getMetricsAsJSON()) as MetricObjectWithValues<MetricValue<string>>[];
}
