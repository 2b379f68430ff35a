export type { BackoffOptions } from './common/backoff.js';
export { type ClusterStatus, status } from './common/cluster-status.js';
export type { LoggerOption } from './common/logger.js';
export { redactText as redactSecrets } from './common/redact.js';
export type { HostStatusDocument, StatusDocument, WorkerStatus } from './common/status-document.js';
export type { WorkerContext, WorkerEventHandler, WorkerStart } from './common/worker-context.js';
export type { ErrorCode, SerializedError } from './errors.js';
export { coerceError, errorCodes, StewardError } from './errors.js';
export { toWorkers } from './listeners/dispatch.js';
export type { ClusterMetrics } from './metrics/cluster-aggregator.js';
export type { ControlOptions, Placement, RecycleOptions, StewardOptions } from './options.js';
export type { RecycleOutcome, RecycleResult } from './primary/recycler.js';
export type { Supervisor } from './primary/supervisor.js';
export type { WorkerExit, WorkerHandle, WorkerState } from './primary/worker-handle.js';
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
  ServicesHostRole,
  ServicesSnapshot,
  SingletonOptions,
} from './services/types.js';

import type { RunServicesOptions, StandaloneServices } from './standalone/run-services.js';

export type { RunServicesOptions, StandaloneServices } from './standalone/run-services.js';

/**
 * Runs a services module alone, with no HTTP server: for splitting services and web across machines,
 * or a dedicated Kubernetes deployment. The same host as in the primary or the sibling; in this process
 * `status()` and the ping handlers answer for these services.
 */
export async function runServices(
  moduleUrl: string | URL,
  input?: RunServicesOptions,
): Promise<StandaloneServices> {
  // Loaded on first call: every HTTP worker imports this module, and the services host with its
  // dependencies would add tens of milliseconds of CPU to each worker's boot (each recycle).
  const standalone = await import('./standalone/run-services.js');
  return standalone.runServices(moduleUrl, input);
}
export { steward } from './steward.js';
export {
  expressPingHandler,
  type FastifyReplyLike,
  fastifyPingHandler,
  httpPingHandler,
  type PingBody,
  type PingOptions,
  pingResult,
} from './worker/ping-handler.js';
