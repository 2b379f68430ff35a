import promClient, { Counter, Registry } from 'prom-client';
import { type DropReason, droppedMessages, type MetricJson } from '../common/messages.js';

/** The role of the process a metric comes from; process metrics carry it as the `role` label. */
export type LocalRole = 'primary' | 'worker' | 'sibling' | 'standalone';

export type { MetricJson };

let library: Registry | undefined;
/** The metric families each role adds (services, worker requests), applied once to the registry. */
const roleCollectors = new Set<(registry: Registry) => void>();

/**
 * Adds a role's own metrics to this process's library registry: at once when it exists, else when it is
 * created. This module knows no role: the worker and the service host register what they measure.
 */
export function addLibraryCollectors(register: (registry: Registry) => void): void {
  if (roleCollectors.has(register)) return;
  roleCollectors.add(register);
  if (library) register(library);
}

/**
 * The registry of this process's `steward_` metrics and Node process metrics, created once per process.
 * It is separate from the application's registry so the library never collides with, or clears, the
 * metrics an application registers on prom-client's global registry.
 */
export function libraryRegistry(role: LocalRole): Registry {
  if (library) return library;
  library = new Registry();
  // Process metrics are labelled by role so a cluster sum reads "memory of all workers", not of everything.
  promClient.collectDefaultMetrics({ register: library, labels: { role } });
  registerIpcMetrics(library);
  for (const register of roleCollectors) register(library);
  return library;
}

function registerIpcMetrics(registry: Registry): void {
  new Counter({
    name: 'steward_ipc_dropped_total',
    help: 'IPC messages dropped on receipt because they were malformed, of an unknown type or unexpected.',
    labelNames: ['reason'],
    registers: [registry],
    // Counters have no `set`: reset and re-add the cumulative count, synchronously within one collect.
    collect() {
      this.reset();
      for (const reason of Object.keys(droppedMessages) as DropReason[])
        this.inc({ reason }, droppedMessages[reason]);
    },
  });
}
