import type { ServiceStatus, ServicesSnapshot } from '../common/service-status.js';
import type { StatusDocument as ClusterStatusDocument } from '../common/status-document.js';

/** The fields of a service the table shows. */
type ServiceRow = Pick<
  ServiceStatus,
  | 'name'
  | 'state'
  | 'since'
  | 'restarts'
  | 'processed'
  | 'failed'
  | 'deadLettered'
  | 'queueDepth'
  | 'lagMs'
  | 'leader'
  | 'lastError'
>;

/**
 * The `/status` document as far as the table reads it: picked from the one declaration the control
 * server writes, so a renamed or retyped field fails to compile here.
 */
export type StatusDocument = Omit<ClusterStatusDocument, 'services'> & {
  services: (Pick<ServicesSnapshot, 'role' | 'pid' | 'at'> & { services: ServiceRow[] }) | null;
};

/** 950 → `950ms`, 65_000 → `1m 5s`, 7_200_000 → `2h 0m`. */
export function formatDuration(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return '-';
  if (ms < 1000) return `${Math.max(0, Math.round(ms))}ms`;
  const seconds = Math.floor(ms / 1000);
  if (seconds < 60) return `${(ms / 1000).toFixed(1)}s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes}m ${seconds % 60}s`;
  const hours = Math.floor(minutes / 60);
  if (hours < 48) return `${hours}h ${minutes % 60}m`;
  return `${Math.floor(hours / 24)}d ${hours % 24}h`;
}

/** Bytes as MB with one decimal under 10 MB (`84 MB`, `7.5 MB`); 0 (no heartbeat yet) as `-`. */
export function formatBytes(bytes: number): string {
  if (!bytes) return '-';
  const mb = bytes / 1e6;
  return `${mb < 10 ? mb.toFixed(1) : Math.round(mb)} MB`;
}

const shown = (value: number | string | null | undefined) =>
  value === null || value === undefined ? '-' : String(value);

/** Left-aligned columns, two spaces apart; the last column is not padded. */
export function renderTable(headers: string[], rows: string[][]): string {
  const widths = headers.map((header, column) =>
    Math.max(header.length, ...rows.map((row) => (row[column] ?? '').length)),
  );
  const line = (cells: string[]) =>
    cells
      .map((cell, column) => (column === cells.length - 1 ? cell : cell.padEnd(widths[column]!)))
      .join('  ')
      .trimEnd();
  return [line(headers), ...rows.map(line)].map((text) => `  ${text}`).join('\n');
}

function workersSection(status: StatusDocument): string {
  if (status.workers.length === 0) return 'Workers: none';
  const rows = status.workers.map((worker) => [
    String(worker.id),
    String(worker.pid),
    worker.retireReason && worker.state === 'draining' ? `draining (${worker.retireReason})` : worker.state,
    formatDuration(worker.age),
    String(worker.requests),
    String(worker.inFlight),
    formatBytes(worker.rss),
    formatBytes(worker.heapUsed),
    worker.lastHeartbeatAt === null ? '-' : `${formatDuration(status.at - worker.lastHeartbeatAt)} ago`,
  ]);
  const headers = ['ID', 'PID', 'STATE', 'AGE', 'REQUESTS', 'IN-FLIGHT', 'RSS', 'HEAP', 'HEARTBEAT'];
  return `Workers (${status.workers.length})\n${renderTable(headers, rows)}`;
}

function servicesSection(status: StatusDocument): string {
  const snapshot = status.services;
  if (snapshot === null) return 'Services: none reported';
  const rows = snapshot.services.map((service) => [
    service.name,
    service.leader === true ? `${service.state} (leader)` : service.state,
    formatDuration(status.at - service.since),
    String(service.restarts),
    String(service.processed),
    String(service.failed),
    String(service.deadLettered),
    shown(service.queueDepth),
    service.lagMs === null ? '-' : formatDuration(service.lagMs),
    service.lastError ? oneLine(service.lastError.message, 60) : '-',
  ]);
  const headers = [
    'NAME',
    'STATE',
    'FOR',
    'RESTARTS',
    'PROCESSED',
    'FAILED',
    'DEAD',
    'QUEUE',
    'LAG',
    'LAST ERROR',
  ];
  const where = `${snapshot.role} pid ${snapshot.pid}, reported ${formatDuration(status.at - snapshot.at)} ago`;
  // The table cell is a reminder; the error a person acts on is printed whole below it.
  const errors = snapshot.services
    .filter((service) => service.lastError)
    .map((service) => {
      const error = service.lastError!;
      return `  ${service.name}: ${error.name}${error.code ? ` [${error.code}]` : ''}: ${error.message}`;
    });
  const table = `Services (${where})\n${renderTable(headers, rows)}`;
  return errors.length === 0 ? table : `${table}\n\nLast errors\n${errors.join('\n')}`;
}

function oneLine(text: string, max: number): string {
  const flat = text.replace(/\s+/g, ' ');
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
}

/** The whole `/status` document as text for a terminal. */
export function renderStatus(status: StatusDocument): string {
  const head = `Primary pid ${status.pid}, up ${formatDuration(status.uptime)}${status.stopping ? ', STOPPING' : ''}`;
  const sections = [head, '', workersSection(status), '', servicesSection(status)];
  if (status.valve) sections.push('', valveSection(status.valve));
  return sections.join('\n');
}

function valveSection(valve: NonNullable<StatusDocument['valve']>): string {
  const head = `Valve ${valve.state}: ${valve.inFlight}/${valve.limit} events in the workers, ${valve.waiting} waiting`;
  const rows = valve.workers.map((worker) => [
    String(worker.id),
    worker.state,
    `${worker.inFlight}/${worker.limit}`,
    String(worker.handled),
    worker.loopDelayMs === null ? '-' : `${worker.loopDelayMs}ms`,
  ]);
  const table =
    rows.length === 0 ? '' : `\n${renderTable(['WORKER', 'VALVE', 'EVENTS', 'HANDLED', 'LOOP DELAY'], rows)}`;
  const unhandled =
    valve.unhandled.length === 0 ? '' : `\n  no worker handles: ${valve.unhandled.join(', ')}`;
  return `${head}${table}${unhandled}`;
}
