import type { StatusUpdate } from '../common/messages.js';
import type { StatusDocument, ValveStatus, WorkerStatus } from '../common/status-document.js';
import type { ClusterMetrics } from '../metrics/cluster-aggregator.js';
import type { ResolvedOptions } from '../options.js';
import type { LifecycleLog } from './dashboard/lifecycle-log.js';
import type { PoolView } from './worker-pool.js';

/** What the control server reads from the supervisor. */
export interface ControlTarget {
  readonly options: ResolvedOptions;
  readonly pool: PoolView;
  readonly metrics: ClusterMetrics;
  /** The last lifecycle events, listed by the dashboard. */
  readonly lifecycle: LifecycleLog;
  statusUpdate(): StatusUpdate;
  /** The dashboard's actions: a rolling restart of the workers and a restart of the services host. */
  restartWorkers(reason: string): Promise<void>;
  restartServices(reason: string): Promise<boolean>;
  /** Problems of the primary process itself (a blocked event loop), if it watches for any. */
  ownProblems?(): string[];
  /** The router of events dispatched to the workers, whose valve `/status` shows. */
  readonly dispatch?: { status(): ValveStatus } | undefined;
}

/** `/status`: the primary, every worker, and the services as their host last reported them. */
export function clusterStatus(target: ControlTarget): StatusDocument {
  const workers = target.pool.handles.map(
    (handle): WorkerStatus => ({
      id: handle.id,
      pid: handle.pid,
      state: handle.state,
      age: handle.age,
      requests: handle.requests,
      inFlight: handle.inFlight,
      rss: handle.rss,
      heapUsed: handle.heapUsed,
      lastHeartbeatAt: handle.lastHeartbeatAt,
      retireReason: handle.retireReason,
    }),
  );
  return {
    pid: process.pid,
    at: Date.now(),
    uptime: Math.round(process.uptime() * 1000),
    stopping: target.pool.stopping,
    workers,
    services: target.statusUpdate().services,
    ...(target.dispatch ? { valve: target.dispatch.status() } : {}),
  };
}
