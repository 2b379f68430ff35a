import promClient, { type Registry } from 'prom-client';
import type { IpcChannel } from '../common/ipc.js';
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

/** How long a drained worker waits for the primary to store its final metrics before exiting anyway. */
const FINAL_REPORT_TIMEOUT_MS = 1_000;

/**
 * Sends this process's metrics once it has drained (a worker) or stopped its services (the sibling) and
 * waits for the primary to store them, so the cluster totals include everything it did, not only what
 * its last scrape saw.
 */
export async function reportFinalMetrics(
  primary: IpcChannel,
  register: Registry | undefined,
  role: LocalRole = 'worker',
  budgetMs = FINAL_REPORT_TIMEOUT_MS,
): Promise<void> {
  const timeout = Math.min(budgetMs, FINAL_REPORT_TIMEOUT_MS);
  if (timeout < 10) return;
  try {
    const metrics = await collectLocalMetrics(role, register);
    await primary.request('metrics:final', { metrics }, timeout);
  } catch {
    // The primary is gone or too busy: the figures of its last successful collect stand in.
  }
}
