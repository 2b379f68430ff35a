import { Counter, type Registry } from 'prom-client';
import { requestTracker } from './request-tracker.js';

/** The worker's own library metrics, read from its request tracker at scrape time. */
export function registerWorkerMetrics(registry: Registry): void {
  new Counter({
    name: 'steward_worker_requests_total',
    help: 'HTTP requests started on the servers of the HTTP workers.',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(requestTracker().requests);
    },
  });
}
