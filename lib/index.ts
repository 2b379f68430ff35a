export type { BackoffOptions } from './common/backoff.js';
export { type LoggerOption, redactSecrets } from './common/logger.js';
export type { ErrorCode, SerializedError } from './errors.js';
export { coerceError, errorCodes, StewardError } from './errors.js';
export { toWorkers } from './listeners/dispatch.js';
export type { ClusterMetrics } from './metrics/cluster-aggregator.js';
export type { ControlOptions, Placement, RecycleOptions, StewardOptions } from './options.js';
export type { RecycleOutcome, RecycleResult } from './primary/recycler.js';
export type { Supervisor } from './primary/supervisor.js';
export type { WorkerExit, WorkerHandle, WorkerState } from './primary/worker-handle.js';
export { defineServices, type ServicesDefinition } from './services/define-services.js';
export { type RunServicesOptions, runServices, type StandaloneServices } from './services/standalone.js';
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
export { steward } from './steward.js';
export { type ClusterStatus, status } from './worker/cluster-status.js';
export type { WorkerEventHandler } from './worker/event-handlers.js';
export {
  expressPingHandler,
  type FastifyReplyLike,
  fastifyPingHandler,
  httpPingHandler,
  type PingBody,
  type PingOptions,
  pingResult,
} from './worker/ping-handler.js';
export type { WorkerContext, WorkerStart } from './worker/worker-context.js';
