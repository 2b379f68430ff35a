import type { ServiceStatus } from './types.js';

/**
 * What the primary knows about services hosted elsewhere, kept apart from the service metrics so a
 * primary records it without loading prom-client: the metrics read it when a scrape builds them.
 */

/** Whether a service can make progress: running, with no problem reported by it or seen by its host. */
export function serviceUp(status: Pick<ServiceStatus, 'state' | 'problem'>): boolean {
  return status.state === 'running' && status.problem === null;
}

/**
 * Services hosted by another process that this process answers for in `steward_service_up`: the primary
 * for its sibling, because a stopped or blocked sibling cannot answer a scrape to say it is down.
 */
let remoteServicesUp: (() => Array<{ service: string; up: boolean }>) | undefined;

export function setRemoteServicesUp(
  source: (() => Array<{ service: string; up: boolean }>) | undefined,
): void {
  remoteServicesUp = source;
}

/** The services of another process this process answers for, with whether each can make progress. */
export function remoteServicesStatus(): Array<{ service: string; up: boolean }> {
  return remoteServicesUp?.() ?? [];
}

/**
 * Restarts of services whose whole host died and was replaced (a killed sibling), counted by the primary:
 * the new host's records start from zero, and the dead one could not count its own death.
 */
export const hostRestarts = new Map<string, number>();

/** The primary saw the services host of `services` die unexpectedly and replaces it. */
export function recordHostRestart(services: readonly string[]): void {
  for (const service of services) hostRestarts.set(service, (hostRestarts.get(service) ?? 0) + 1);
}
