import type { StatusUpdate } from './messages.js';
import type { ServiceStatus, ServicesHostRole } from './service-status.js';

/** The services status as a worker (or any process) sees it. */
export interface ClusterStatus {
  /** Per-service status; empty when no services are configured. */
  services: ServiceStatus[];
  /** Where the services run, or null when none are configured or no host has reported yet. */
  host: { role: ServicesHostRole; pid: number } | null;
  /** Epoch ms when the host took the snapshot, or null. */
  at: number | null;
  /** Epoch ms when this process received it, or null. */
  receivedAt: number | null;
  /**
   * True when the last update, or the host snapshot it carries, is older than three push intervals: the
   * primary or the services host may be gone or blocked.
   */
  stale: boolean;
  /** Every service that is not in standby is running, and the snapshot is fresh. */
  healthy: boolean;
}

let latest: StatusUpdate | null = null;
let receivedAt: number | null = null;
let staleAfterMs = 6_000;
let servicesExpected = false;

/** Called where the status arrives (worker agent) or is produced (primary); `expected` says services exist. */
export function applyStatusUpdate(update: StatusUpdate, expected: boolean, staleAfter: number): void {
  latest = update;
  receivedAt = Date.now();
  servicesExpected = expected;
  staleAfterMs = staleAfter;
}

/**
 * True when every service that should be running is running and reports no problem. Standby singletons
 * are healthy elsewhere.
 */
export function servicesHealthy(services: readonly ServiceStatus[]): boolean {
  return services.every(
    (service) => (service.state === 'running' || service.state === 'standby') && service.problem === null,
  );
}

/**
 * The latest services status known to this process. In an HTTP worker it is the snapshot the primary
 * pushed last, flagged `stale` when the pushes stopped; it never claims "running" for a host that died
 * (the primary replaces a dead host's snapshot at once).
 */
export function status(now = Date.now()): ClusterStatus {
  const snapshot = latest?.services ?? null;
  // Old either way: the primary stopped pushing, or it keeps pushing a host report that stopped coming.
  const stale =
    (receivedAt !== null && now - receivedAt > staleAfterMs) ||
    (snapshot !== null && now - snapshot.at > staleAfterMs) ||
    snapshot?.stale !== undefined;
  const services = snapshot?.services ?? [];
  const reported = snapshot !== null || !servicesExpected;
  return {
    services,
    host: snapshot ? { role: snapshot.role, pid: snapshot.pid } : null,
    at: snapshot?.at ?? null,
    receivedAt,
    stale,
    healthy: reported && !stale && latest !== null && servicesHealthy(services),
  };
}
