/**
 * `cluster-steward/services`: what a services module needs, without the cluster machinery. A module that
 * imports `defineServices` from here (instead of `cluster-steward`) loads faster, so a re-forked services
 * sibling is back sooner after a crash.
 */
export { toWorkers } from './listeners/dispatch.js';
export { defineServices, type ServicesDefinition } from './services/define-services.js';
export type {
  EventOutcome,
  EventRecord,
  RestartOptions,
  Service,
  ServiceContext,
  ServiceOptions,
  ServiceState,
  ServiceStatus,
  ServicesSnapshot,
  SingletonOptions,
} from './services/types.js';
