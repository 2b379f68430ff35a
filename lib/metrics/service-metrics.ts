import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { type ServiceRecord, serviceRecordCreated, serviceRecords } from '../services/service-record.js';
import type { EventOutcome, EventRecord, ServiceState, ServiceStatus } from '../services/types.js';

const STATES: readonly ServiceState[] = [
  'starting',
  'running',
  'backoff',
  'standby',
  'stopping',
  'stopped',
  'failed',
];

const OUTCOME_FIELDS: readonly [EventOutcome, keyof ServiceStatus][] = [
  ['processed', 'processed'],
  ['failed', 'failed'],
  ['dead_lettered', 'deadLettered'],
  ['duplicate', 'duplicates'],
];

/**
 * Created at import, outside any registry, so it can observe events from the moment a service records
 * its first one; `registerServiceMetrics` adds it to the library registry.
 */
const handlerSeconds = new Histogram({
  name: 'steward_event_handler_seconds',
  help: 'Wall time of event handlers, by service and outcome.',
  labelNames: ['service', 'outcome'],
  buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
  registers: [],
});

function observeEvent(service: string, event: EventRecord): void {
  if (event.durationMs === undefined || !(event.durationMs >= 0)) return;
  handlerSeconds.observe({ service, outcome: event.outcome }, event.durationMs / 1000);
}

function subscribe(record: ServiceRecord): void {
  record.on('event', observeEvent);
}

serviceRecordCreated.add(subscribe);
for (const record of serviceRecords) subscribe(record);

/**
 * Service metrics of the process hosting services, read from the live service records at scrape time
 * (records outlive service restarts, so their counters are cumulative for the process).
 */
export function registerServiceMetrics(registry: Registry): void {
  const registers = [registry];
  registry.registerMetric(handlerSeconds);
  new Gauge({
    name: 'steward_service_up',
    help: 'Whether the service is running (1) or not (0).',
    labelNames: ['service'],
    registers,
    collect() {
      this.reset();
      for (const { status } of serviceRecords)
        this.set({ service: status.name }, status.state === 'running' ? 1 : 0);
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
      for (const { status } of serviceRecords) this.inc({ service: status.name }, status.restarts);
    },
  });
  new Counter({
    name: 'steward_events_total',
    help: 'Events handled by the service, by outcome.',
    labelNames: ['service', 'outcome'],
    registers,
    collect() {
      this.reset();
      for (const { status } of serviceRecords)
        for (const [outcome, field] of OUTCOME_FIELDS)
          this.inc({ service: status.name, outcome }, status[field] as number);
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
