import type { MetricJson } from '../common/messages.js';
import { ipcDroppedFamily, processCpuFamilies } from '../metrics/local-metrics.js';
import { CounterRecord } from '../metrics/metric-record.js';
import { requestTracker } from './request-tracker.js';

/**
 * The worker's counters as plain records, read at each collect: every worker boots (each recycle) without
 * prom-client, which loads at the first scrape; its final report needs none of it.
 */
export function workerFamilies(): MetricJson[] {
  const requests = new CounterRecord({
    name: 'steward_worker_requests_total',
    help: 'HTTP requests started on the servers of the HTTP workers.',
  });
  requests.inc({}, requestTracker().requests);
  return [requests.toJson(), ipcDroppedFamily(), ...processCpuFamilies('worker')];
}
