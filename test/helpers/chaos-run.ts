import { execFile } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { promisify } from 'node:util';
import {
  type ChaosEnv,
  type ClusterStatus,
  clusterStatus,
  HttpLoad,
  healthy,
  Producers,
  recordedSince,
  type Source,
} from './chaos.js';
import { adminQuery, terminateBackends } from './pg.js';
import { until } from './process.js';

const run = promisify(execFile);
/** How long after a kill -9 new connections may still be handed to the dead worker. */
const KILL_NOTICE_MS = 1_000;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export type FaultKind =
  | 'worker-kill'
  | 'sibling-kill'
  | 'pg-terminate'
  | 'amqp-cut'
  | 'rabbitmq-restart'
  | 'pg-restart';

export interface FaultResult {
  kind: FaultKind;
  at: number;
  /** From the fault until the cluster was whole again and events of the affected sources were recorded. */
  recoveryMs: number;
  detail: Record<string, unknown>;
}

interface WorkerKill {
  pid: number;
  at: number;
  /** Load clients whose connection that worker served at the kill. */
  clientsOn: number;
}

export interface ChaosOptions {
  /** Events per source. */
  total: number;
  /** Time over which the events are produced. */
  durationMs: number;
  faults: FaultKind[];
  /** Pause between the recovery from one fault and the next fault. */
  gapMs: number;
  clients: number;
  /** How long the proxy refuses connections after an AMQP cut (a broker restart seen from the client). */
  amqpRefuseMs: number;
  recoveryTimeoutMs: number;
  drainTimeoutMs: number;
  log?: (line: string) => void;
}

export interface SourceReport {
  sent: number;
  handled: number;
  lost: number;
  /** Handler runs beyond the first, per event, summed. */
  duplicates: number;
  /** Ids recorded that were never sent (must be 0). */
  unexpected: number;
  lostSample: string[];
}

export interface ChaosReport {
  sources: Record<Source, SourceReport>;
  deadLettered: number;
  faults: FaultResult[];
  http: {
    ok: number;
    failures: number;
    /** Failures on a connection a killed worker served (or not yet answered), ended after the kill. */
    attributable: number;
    /** Of those, requests in flight at the kill. */
    inFlightAtKill: number;
    /** Of those, requests sent after the kill, before the primary saw the worker die. */
    afterKill: number;
    /** The largest excess of one kill's in-flight failures over its bound (0: every kill within bound). */
    worstKill: number;
    /** How long the load ran. */
    loadMs: number;
    /** Sum over worker kills of the clients whose request in flight may have been on the killed worker. */
    bound: number;
    codes: Record<string, number>;
  };
  producerRetries: number;
  /** From the last event produced until every event was recorded (or the drain deadline). */
  catchUpMs: number;
  durationMs: number;
}

/** Runs load, production and the faults in order, then waits for every event and reports. */
export async function runChaos(env: ChaosEnv, options: ChaosOptions): Promise<ChaosReport> {
  const started = Date.now();
  const load = new HttpLoad(env.url, options.clients);
  const producers = new Producers(env, options.total, options.durationMs);
  let producing = true;
  void producers.done.then(() => {
    producing = false;
  });
  const faults: FaultResult[] = [];
  const kills: WorkerKill[] = [];
  try {
    for (const kind of options.faults) {
      await sleep(options.gapMs);
      const result = await inject(env, kind, { load, kills, options, producing: () => producing });
      faults.push(result);
      options.log?.(
        `fault ${faults.length}/${options.faults.length} ${kind}: recovered in ${result.recoveryMs} ms`,
      );
    }
    // Once the faults are over the rest is sent at once; without faults the pace is the baseline's.
    if (options.faults.length > 0) producers.hurry();
    await producers.done;
  } finally {
    await load.stop();
  }
  const loadMs = Date.now() - started;
  const producedAt = Date.now();
  await until(
    async () => {
      const rows = await adminQuery<{ n: number }>(`SELECT count(*)::int AS n FROM "${env.schema}".results`);
      return rows[0]!.n >= options.total * 2;
    },
    options.drainTimeoutMs,
    'every event recorded',
    200,
  ).catch(() => undefined);
  const catchUpMs = Date.now() - producedAt;
  return {
    catchUpMs,
    sources: {
      amqp: await sourceReport(env, 'amqp', options.total),
      pg: await sourceReport(env, 'pg', options.total),
    },
    deadLettered: await deadLettered(env),
    faults,
    http: { ...httpReport(load, kills), loadMs },
    producerRetries: producers.retries,
    durationMs: Date.now() - started,
  };
}

interface InjectContext {
  load: HttpLoad;
  kills: WorkerKill[];
  options: ChaosOptions;
  producing: () => boolean;
}

async function inject(env: ChaosEnv, kind: FaultKind, context: InjectContext): Promise<FaultResult> {
  const before = await clusterStatus(env);
  const at = Date.now();
  const { since, detail, extra } = await applyFault(env, kind, before, context);
  // New records prove the sources flow again; once production ended nothing new can arrive.
  const sources: Source[] =
    kind === 'worker-kill'
      ? []
      : kind.startsWith('amqp') || kind.startsWith('rabbit')
        ? ['amqp']
        : ['amqp', 'pg'];
  await until(
    async () => {
      const status = await clusterStatus(env);
      if (!healthy(status) || !extra(status)) return false;
      if (!context.producing()) return true;
      for (const source of sources) if ((await recordedSince(env, source, since)) === 0) return false;
      return true;
    },
    context.options.recoveryTimeoutMs,
    `recovery from ${kind}`,
    20,
  );
  return { kind, at, recoveryMs: Date.now() - at, detail };
}

type Applied = { since: number; detail: Record<string, unknown>; extra: (status: ClusterStatus) => boolean };

async function applyFault(
  env: ChaosEnv,
  kind: FaultKind,
  before: ClusterStatus,
  { load, kills, options }: InjectContext,
): Promise<Applied> {
  const always = () => true;
  switch (kind) {
    case 'worker-kill': {
      const ready = before.workers.filter((worker) => worker.state === 'ready');
      const victim = ready[Math.floor(Math.random() * ready.length)]!;
      kills.push({ pid: victim.pid, at: Date.now(), clientsOn: load.clientsOn(victim.pid) });
      process.kill(victim.pid, 'SIGKILL');
      return {
        since: Date.now(),
        detail: { pid: victim.pid },
        extra: (status) => !status.workers.some((worker) => worker.pid === victim.pid),
      };
    }
    case 'sibling-kill': {
      const pid = before.services!.pid;
      process.kill(pid, 'SIGKILL');
      return { since: Date.now(), detail: { pid }, extra: (status) => status.services?.pid !== pid };
    }
    case 'pg-terminate': {
      const terminated = await terminateBackends(env.pgApp);
      return { since: Date.now(), detail: { terminated }, extra: always };
    }
    case 'amqp-cut': {
      env.proxy.cut(options.amqpRefuseMs);
      const since = Date.now() + options.amqpRefuseMs;
      return {
        since,
        detail: { refusedMs: options.amqpRefuseMs },
        extra: (s) => (s.services?.at ?? 0) > since,
      };
    }
    case 'rabbitmq-restart': {
      await run('rabbitmqctl', ['-q', 'stop_app'], { timeout: 60_000 });
      await run('rabbitmqctl', ['-q', 'start_app'], { timeout: 60_000 });
      return { since: Date.now(), detail: {}, extra: always };
    }
    case 'pg-restart': {
      const version = readdirSync('/etc/postgresql')[0]!;
      await run('pg_ctlcluster', ['--skip-systemctl-redirect', version, 'main', 'restart'], {
        timeout: 60_000,
      });
      return { since: Date.now(), detail: { version }, extra: always };
    }
  }
}

async function sourceReport(env: ChaosEnv, source: Source, total: number): Promise<SourceReport> {
  const prefix = source === 'amqp' ? 'a-' : 'p-';
  const [row] = await adminQuery<{ handled: number; duplicates: number; unexpected: number }>(
    `SELECT count(*) FILTER (WHERE n < $3)::int AS handled,
            coalesce(sum(handled - 1) FILTER (WHERE n < $3), 0)::int AS duplicates,
            count(*) FILTER (WHERE n IS NULL OR n >= $3)::int AS unexpected
       FROM (SELECT handled, CASE WHEN id ~ '^[ap]-[0-9]+$' AND left(id, 2) = $2
                                  THEN substr(id, 3)::int END AS n
               FROM "${env.schema}".results WHERE source = $1) AS r`,
    [source, prefix, total],
  );
  const missing = await adminQuery<{ id: string }>(
    `SELECT $2 || i AS id FROM generate_series(0, $3 - 1) AS i
      WHERE NOT EXISTS (SELECT 1 FROM "${env.schema}".results r WHERE r.source = $1 AND r.id = $2 || i)
      LIMIT 20`,
    [source, prefix, total],
  );
  return {
    sent: total,
    handled: row!.handled,
    lost: total - row!.handled,
    duplicates: row!.duplicates,
    unexpected: row!.unexpected,
    lostSample: missing.map((m) => m.id),
  };
}

async function deadLettered(env: ChaosEnv): Promise<number> {
  const rows = await adminQuery<{ n: number }>(`SELECT count(*)::int AS n FROM "${env.schema}".events_dead`);
  return rows[0]!.n;
}

function httpReport(load: HttpLoad, kills: WorkerKill[]): Omit<ChaosReport['http'], 'loadMs'> {
  // A failure belongs to a kill when its connection was the killed worker's (or not yet answered) and it
  // ended after the kill: either in flight at the kill, or sent before the primary saw the worker die.
  const killOf = (failure: HttpLoad['failures'][number]) =>
    kills.find(
      (kill) =>
        (failure.lastPid === kill.pid || failure.lastPid === null) &&
        failure.failedAt >= kill.at &&
        failure.startedAt <= kill.at + KILL_NOTICE_MS,
    );
  const inFlight = new Map<WorkerKill, number>();
  let attributable = 0;
  let afterKill = 0;
  for (const failure of load.failures) {
    const kill = killOf(failure);
    if (!kill) continue;
    attributable++;
    if (failure.startedAt <= kill.at) inFlight.set(kill, (inFlight.get(kill) ?? 0) + 1);
    else afterKill++;
  }
  const codes: Record<string, number> = {};
  for (const failure of load.failures) codes[failure.code] = (codes[failure.code] ?? 0) + 1;
  return {
    ok: load.ok,
    failures: load.failures.length,
    attributable,
    inFlightAtKill: [...inFlight.values()].reduce((sum, n) => sum + n, 0),
    afterKill,
    bound: kills.reduce((sum, kill) => sum + kill.clientsOn, 0),
    worstKill: Math.max(0, ...kills.map((kill) => (inFlight.get(kill) ?? 0) - kill.clientsOn)),
    codes,
  };
}

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted.length === 0 ? 0 : sorted[Math.floor((sorted.length - 1) / 2)]!;
};

/** Recovery times per fault kind: count, median and max in ms. */
export function recoveryByKind(
  faults: FaultResult[],
): Array<{ kind: FaultKind; count: number; medianMs: number; maxMs: number }> {
  const kinds = [...new Set(faults.map((fault) => fault.kind))];
  return kinds.map((kind) => {
    const times = faults.filter((fault) => fault.kind === kind).map((fault) => fault.recoveryMs);
    return { kind, count: times.length, medianMs: median(times), maxMs: Math.max(...times) };
  });
}

export function recoveryOverall(faults: FaultResult[]): { medianMs: number; maxMs: number } {
  const times = faults.map((fault) => fault.recoveryMs);
  return { medianMs: median(times), maxMs: times.length === 0 ? 0 : Math.max(...times) };
}
