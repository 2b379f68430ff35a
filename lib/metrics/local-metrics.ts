import { createRequire } from 'node:module';
import type { Registry } from 'prom-client';
import type { IpcChannel } from '../common/ipc.js';
import { type DropReason, droppedMessages } from '../common/messages.js';
import type { LocalRole, MetricJson } from './library-metrics.js';
import { CounterRecord } from './metric-record.js';

export type { LocalRole, MetricJson } from './library-metrics.js';

/** Families a process counts as plain numbers, without prom-client (none unless its role passes some). */
export type PlainFamilies = () => MetricJson[];

const noFamilies: PlainFamilies = () => [];

/**
 * The metrics of this process as prom-client JSON: its plain families, the library's registry (`steward_`
 * metrics and process metrics labelled by role) and the application's (prom-client's global registry
 * unless one was passed). Sent to the primary on `metrics:collect`. prom-client and the library registry
 * are loaded by the first call, not with the process. A name in more than one source is taken from the
 * first (plain, library, application): an application that also calls `collectDefaultMetrics()` would
 * otherwise have two families of one name merged into one and double counted.
 */
export async function collectLocalMetrics(
  role: LocalRole,
  register: Registry | undefined,
  plain: PlainFamilies = noFamilies,
): Promise<MetricJson[]> {
  const [promClient, { libraryRegistry }] = await Promise.all([
    import('prom-client'),
    import('./library-metrics.js'),
  ]);
  const library = libraryRegistry(role);
  const application = register ?? promClient.register;
  const [own, theirs] = await Promise.all([
    library.getMetricsAsJSON() as Promise<MetricJson[]>,
    application === library ? [] : (application.getMetricsAsJSON() as Promise<MetricJson[]>),
  ]);
  return firstOfEachName([plain(), own, theirs]);
}

function firstOfEachName(sources: MetricJson[][]): MetricJson[] {
  const names = new Set<string>();
  const merged: MetricJson[] = [];
  for (const source of sources)
    for (const metric of source) {
      if (names.has(metric.name)) continue;
      names.add(metric.name);
      merged.push(metric);
    }
  return merged;
}

/** How long a drained worker waits for the primary to store its final metrics before exiting anyway. */
const FINAL_REPORT_TIMEOUT_MS = 1_000;

/**
 * Sends this process's metrics once it has drained (a worker) or stopped its services (the sibling) and
 * waits for the primary to store them, so the cluster totals include everything it did, not only what
 * its last scrape saw. A process that never loaded prom-client (never scraped, no registry of the
 * application's) sends its plain families alone: they hold every count it made, and loading prom-client
 * to find empty registries would cost each retiring worker tens of milliseconds of CPU.
 */
export async function reportFinalMetrics(
  primary: IpcChannel,
  register: Registry | undefined,
  role: LocalRole = 'worker',
  budgetMs = FINAL_REPORT_TIMEOUT_MS,
  plain: PlainFamilies = noFamilies,
): Promise<void> {
  const timeout = Math.min(budgetMs, FINAL_REPORT_TIMEOUT_MS);
  if (timeout < 10) return;
  try {
    const metrics =
      plain !== noFamilies && register === undefined && !promClientLoaded()
        ? plain()
        : await collectLocalMetrics(role, register, plain);
    await primary.request('metrics:final', { metrics }, timeout);
  } catch {
    // The primary is gone or too busy: the figures of its last successful collect stand in.
  }
}

const require = createRequire(import.meta.url);

/**
 * Whether prom-client (the copy this package resolves) has been loaded in this process, by a scrape or by
 * the application: a CommonJS package, so it is in the require cache once anything imported it.
 */
export function promClientLoaded(): boolean {
  try {
    return require.cache[require.resolve('prom-client')] !== undefined;
  } catch {
    return false;
  }
}

/**
 * prom-client's CPU counters (`collectDefaultMetrics`) as plain records, read from the operating system
 * since the process started: complete however late prom-client is loaded.
 */
export function processCpuFamilies(role: LocalRole): MetricJson[] {
  const usage = process.cpuUsage();
  const labels = { role };
  const families: [string, string, number][] = [
    ['process_cpu_user_seconds_total', 'Total user CPU time spent in seconds.', usage.user],
    ['process_cpu_system_seconds_total', 'Total system CPU time spent in seconds.', usage.system],
    [
      'process_cpu_seconds_total',
      'Total user and system CPU time spent in seconds.',
      usage.user + usage.system,
    ],
  ];
  return families.map(([name, help, micros]) => {
    const record = new CounterRecord({ name, help });
    record.inc(labels, micros / 1e6);
    return record.toJson();
  });
}

/** `steward_ipc_dropped_total` as a plain record: the same family as the library registry's counter. */
export function ipcDroppedFamily(): MetricJson {
  const record = new CounterRecord({
    name: 'steward_ipc_dropped_total',
    help: 'IPC messages dropped on receipt because they were malformed, of an unknown type or unexpected.',
  });
  for (const reason of Object.keys(droppedMessages) as DropReason[])
    record.inc({ reason }, droppedMessages[reason]);
  return record.toJson();
}
