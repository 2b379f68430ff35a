import { Counter, Gauge, type Metric, type Registry } from 'prom-client';
import { addLibraryCollectors } from '../metrics/library-metrics.js';
import { handlerDurationFamily } from './handler-durations.js';
import { hostRestarts, remoteServicesStatus, serviceUp } from './service-figures.js';
import { type ServiceRecord, serviceRecordCreated, serviceRecords } from './service-record.js';
import type { EventOutcome, ServiceState, ServiceStatus } from './types.js';

const STATES: readonly ServiceState[] = [
  'starting',
  'running',
  'backoff',
  'standby',
  'stopping',
  'stopped',
  'failed',
];

const OUTCOME_FIELDS: readonly [EventOutcome, 'processed' | 'failed' | 'deadLettered' | 'duplicates'][] = [
  ['processed', 'processed'],
  ['failed', 'failed'],
  ['dead_lettered', 'deadLettered'],
  ['duplicate', 'duplicates'],
];

type Counts = Pick<
  ServiceStatus,
  'restarts' | 'processed' | 'failed' | 'deadLettered' | 'duplicates' | 'handlerTimeouts'
>;
const COUNT_FIELDS: readonly (keyof Counts)[] = [
  'restarts',
  'processed',
  'failed',
  'deadLettered',
  'duplicates',
  'handlerTimeouts',
];

/** Records created in this process whose counts are not yet folded into `disposedCounts`. */
const createdRecords = new Set<ServiceRecord>();
/**
 * Counts of records whose host has stopped (disposed records leave `serviceRecords`), by service name,
 * so the counters of this process never go backwards: a stopped sibling still reports its last events,
 * and a services host restarted inside the primary continues the totals of the previous one.
 */
const disposedCounts = new Map<string, Counts>();

function subscribe(record: ServiceRecord): void {
  createdRecords.add(record);
}

/** Cumulative counts per service name: live records plus every disposed one. */
function cumulativeCounts(): Map<string, Counts> {
  for (const record of createdRecords) {
    if (serviceRecords.has(record)) continue;
    createdRecords.delete(record);
    addCounts(disposedCounts, record.status.name, record.status);
  }
  const counts = new Map<string, Counts>();
  for (const [name, disposed] of disposedCounts) addCounts(counts, name, disposed);
  for (const record of createdRecords) addCounts(counts, record.status.name, record.status);
  for (const [name, restarts] of hostRestarts) {
    const zero = Object.fromEntries(COUNT_FIELDS.map((field) => [field, 0])) as Counts;
    addCounts(counts, name, { ...zero, restarts });
  }
  return counts;
}

function addCounts(into: Map<string, Counts>, name: string, from: Counts): void {
  const counts = into.get(name) ?? {
    restarts: 0,
    processed: 0,
    failed: 0,
    deadLettered: 0,
    duplicates: 0,
    handlerTimeouts: 0,
  };
  for (const field of COUNT_FIELDS) counts[field] += from[field];
  into.set(name, counts);
}

serviceRecordCreated.add(subscribe);
for (const record of serviceRecords) subscribe(record);
// Every process that loads this module hosts services or answers for them (the primary): its library
// registry carries the service families.
addLibraryCollectors(registerServiceMetrics);

/**
 * Service metrics of the process hosting services, read from the service records at scrape time: gauges
 * from the live records, counters from every record this process has had (records outlive restarts of a
 * service; disposed ones, of a stopped host, are folded in by name).
 */
function registerServiceMetrics(registry: Registry): void {
  const registers = [registry];
  // Kept as plain numbers from the first event (handler-durations.ts); the registry reads it like its own.
  registry.registerMetric({
    name: 'steward_event_handler_seconds',
    help: 'Wall time of event handlers, by service and outcome.',
    get: async () => handlerDurationFamily(),
    reset() {},
  } as unknown as Metric);
  new Gauge({
    name: 'steward_service_up',
    help: 'Whether the service can make progress (1: running, no problem) or not (0).',
    labelNames: ['service'],
    registers,
    collect() {
      this.reset();
      for (const { status } of serviceRecords) this.set({ service: status.name }, serviceUp(status) ? 1 : 0);
      for (const { service, up } of remoteServicesStatus()) this.set({ service }, up ? 1 : 0);
    },
  });
  new Gauge({
    name: 'steward_service_state',
    help: 'Current state of the service: 1 for the state it is in, 0 for the others.',
    labelNames: ['service', 'state'],
    registers,
    collect() {
      this.reset();
      for (const { status } of serviceRecords)
        for (const state of STATES) this.set({ service: status.name, state }, status.state === state ? 1 : 0);
    },
  });
  registerServiceCounters(registers);
  registerServiceBacklog(registers);
}

function registerServiceCounters(registers: Registry[]): void {
  // Counters have no `set`: reset and re-add the cumulative value, synchronously within one collect.
  new Counter({
    name: 'steward_service_restarts_total',
    help: 'Restarts of the service by its host (crashes, stalls, lost singleton locks).',
    labelNames: ['service'],
    registers,
    collect() {
      this.reset();
      for (const [service, counts] of cumulativeCounts()) this.inc({ service }, counts.restarts);
    },
  });
  new Counter({
    name: 'steward_events_total',
    help: 'Events handled by the service, by outcome.',
    labelNames: ['service', 'outcome'],
    registers,
    collect() {
      this.reset();
      for (const [service, counts] of cumulativeCounts())
        for (const [outcome, field] of OUTCOME_FIELDS) this.inc({ service, outcome }, counts[field]);
    },
  });
  new Counter({
    name: 'steward_handler_timeouts_total',
    help: 'Handler runs ended by their handlerTimeout (the event failed or was dead-lettered).',
    labelNames: ['service'],
    registers,
    collect() {
      this.reset();
      for (const [service, counts] of cumulativeCounts()) this.inc({ service }, counts.handlerTimeouts);
    },
  });
}

function registerServiceBacklog(registers: Registry[]): void {
  new Gauge({
    name: 'steward_event_lag_seconds',
    help: 'Time from the creation of the last handled event to the start of its handler.',
    labelNames: ['service'],
    registers,
    collect() {
      this.reset();
      for (const { status } of serviceRecords)
        if (status.lagMs !== null) this.set({ service: status.name }, status.lagMs / 1000);
    },
  });
  new Gauge({
    name: 'steward_queue_depth',
    help: 'Events waiting in the source of the service, where the source knows it.',
    labelNames: ['service'],
    registers,
    collect() {
      this.reset();
      for (const { status } of serviceRecords)
        if (status.queueDepth !== null) this.set({ service: status.name }, status.queueDepth);
    },
  });
  new Gauge({
    name: 'steward_queue_oldest_seconds',
    help: 'Age of the oldest waiting event in the source of the service, where the source knows it.',
    labelNames: ['service'],
    registers,
    collect() {
      this.reset();
      for (const { status } of serviceRecords)
        if (status.oldestAgeMs !== null) this.set({ service: status.name }, status.oldestAgeMs / 1000);
    },
  });
}
