export type { BackoffOptions } from './common/backoff.js';
export { type ClusterStatus, status } from './common/cluster-status.js';
export { type LoggerOption, redactSecrets } from './common/logger.js';
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
export { type RunServicesOptions, runServices, type StandaloneServices } from './standalone/run-services.js';
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
