/**
 * The valve: 2 workers under HTTP load while a backlog of PostgreSQL events (2 ms of CPU each) is
 * dispatched to them. Three runs in one process: HTTP only, fixed concurrency (`valve: false`), valve.
 * (a) closed loop (wrk, 50 keep-alive connections): HTTP req/s against HTTP only;
 * (b) open loop at 70 % of the HTTP-only capacity (bench/lib/open-loop.js: latency from when each request
 *     fell due, in fractions of a millisecond): p99 against HTTP only;
 * (c) HTTP stopped: the drain rate of a fresh backlog against the fixed-concurrency run.
 */
import pg from 'pg';
import { enqueue } from '../lib/pg.js';
import {
  type App,
  type LoadResult,
  loadAverages,
  lostRequests,
  machineNote,
  openLoopCapacity,
  runOpenLoop,
  runWrk,
  startApp,
  writeBenchmarkSection,
} from './lib/load.js';

const BASE = process.env.STEWARD_BENCH_PG ?? 'postgres://postgres@127.0.0.1:5432/test';
const BACKLOG = Number(process.env.BACKLOG ?? 20_000);
const DRAIN_BACKLOG = Number(process.env.DRAIN_BACKLOG ?? 5_000);
const SECONDS = Number(process.env.SECONDS ?? 8);
const CONNECTIONS = 50;
const schema = `steward_bench_valve_${process.pid}`;
const admin = new pg.Pool({ connectionString: BASE, max: 2 });

type Mode = 'http-only' | 'fixed' | 'valve';
interface ModeResult {
  /** The open-loop client's own capacity against this app (HTTP only), answers per second. */
  capacity: number;
  closed: LoadResult;
  closedEventsPerSecond: number;
  open: LoadResult;
  openEventsPerSecond: number;
  drainEventsPerSecond: number;
}

async function queued(): Promise<number> {
  const result = await admin.query(`SELECT count(*)::int AS n FROM ${schema}.events`);
  return result.rows[0].n as number;
}

async function fill(count: number): Promise<void> {
  for (let done = 0; done < count; done += 1000) {
    const n = Math.min(1000, count - done);
    await enqueue(
      admin,
      Array.from({ length: n }, () => ({ type: 'burn' })),
      { schema },
    );
  }
}

async function waitFor(check: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** Events handled per second while `work` runs, from the queue's depth before and after. */
async function eventsDuring<T>(work: () => Promise<T>): Promise<[T, number]> {
  const before = await queued();
  const started = Date.now();
  const value = await work();
  const after = await queued();
  return [value, (before - after) / ((Date.now() - started) / 1000)];
}

async function runMode(mode: Mode, openRate: number | undefined): Promise<ModeResult> {
  await admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  const app: App = await startApp('apps/valve-app.js', {
    VALVE_PG: BASE,
    VALVE_SCHEMA: schema,
    ...(mode === 'fixed' ? { VALVE_MODE: 'fixed' } : {}),
  });
  try {
    await waitFor(
      async () => (await admin.query('SELECT to_regclass($1) AS t', [`${schema}.events`])).rows[0].t !== null,
      30_000,
      'queue tables',
    );
    if (mode !== 'http-only') await fill(BACKLOG);
    await runWrk(app.url, CONNECTIONS, 2); // warm-up: JIT, both workers accepting
    const [closed, closedEventsPerSecond] = await eventsDuring(() => runWrk(app.url, CONNECTIONS, SECONDS));
    // The open loop is set against what its own client sustains (wrk's C client sustains more).
    const capacity = openRate === undefined ? await openLoopCapacity(app.url, SECONDS, CONNECTIONS) : 0;
    const rate = openRate ?? capacity * 0.7;
    const [open, openEventsPerSecond] = await eventsDuring(() =>
      runOpenLoop(app.url, rate, SECONDS, CONNECTIONS),
    );
    let drainEventsPerSecond = 0;
    if (mode !== 'http-only') {
      // The same fresh backlog for every run: what is left of the first one is removed.
      await admin.query(`DELETE FROM ${schema}.events`);
      await fill(DRAIN_BACKLOG);
      const started = Date.now();
      await waitFor(async () => (await queued()) === 0, 300_000, 'backlog drained');
      drainEventsPerSecond = DRAIN_BACKLOG / ((Date.now() - started) / 1000);
    }
    console.log(
      `${mode}: closed ${Math.round(closed.rps)} req/s p50 ${closed.p50Ms} ms (${Math.round(closedEventsPerSecond)} events/s); ` +
        `open ${Math.round(open.rps)} req/s p99 ${open.p99Ms.toFixed(2)} ms (${Math.round(openEventsPerSecond)} events/s; ${open.detail}); ` +
        `drain ${Math.round(drainEventsPerSecond)} events/s; sent/answered closed ${closed.sent}/${closed.requests}, open ${open.sent}/${open.requests}; errors ${closed.errors + open.errors}`,
    );
    return { capacity, closed, closedEventsPerSecond, open, openEventsPerSecond, drainEventsPerSecond };
  } finally {
    await app.stop();
  }
}

const loadBefore = loadAverages();
console.log(`load average before: ${loadBefore}`);
const results = new Map<Mode, ModeResult>();
const httpOnly = await runMode('http-only', undefined);
results.set('http-only', httpOnly);
const openRate = httpOnly.capacity * 0.7;
for (const mode of ['fixed', 'valve'] as const) results.set(mode, await runMode(mode, openRate));
await admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
await admin.end();
const loadAfter = loadAverages();

const base = results.get('http-only')!;
const fixed = results.get('fixed')!;
const rows = (['http-only', 'fixed', 'valve'] as const).map((mode) => {
  const r = results.get(mode)!;
  const drain =
    mode === 'http-only'
      ? '–'
      : `${Math.round(r.drainEventsPerSecond)} (${(r.drainEventsPerSecond / fixed.drainEventsPerSecond).toFixed(2)}×)`;
  const counted = (load: LoadResult) => `${load.sent} / ${load.requests} / ${lostRequests(load) ?? '?'}`;
  return `| ${mode} | ${Math.round(r.closed.rps)} (${(r.closed.rps / base.closed.rps).toFixed(2)}×) | ${r.closed.p50Ms.toFixed(2)} | ${counted(r.closed)} | ${Math.round(r.closedEventsPerSecond)} | ${r.open.p99Ms.toFixed(2)} (${(r.open.p99Ms / base.open.p99Ms).toFixed(2)}×) | ${counted(r.open)}${r.open.errors > 0 ? ` (${r.open.errors} errors or due and never sent)` : ''} | ${Math.round(r.openEventsPerSecond)} | ${drain} |`;
});
const valve = results.get('valve')!;
// The HTTP-only open loop must keep to its schedule, or (b) compares two overloads: more than 50 ms of
// requests due and unsent at once means the machine could not hold 70 % of capacity in this run.
const openHeld = (base.open.peakQueued ?? 0) <= openRate * 0.05;
const openVerdict = openHeld
  ? `${(valve.open.p99Ms / base.open.p99Ms).toFixed(2)}×`
  : `not measured in this run: the HTTP-only open loop itself fell behind (up to ${base.open.peakQueued} requests due and unsent at once), so both p99 figures are of an overload`;
const table = [
  `2 workers, handlers burning ${process.env.VALVE_BURN_MS ?? 2} ms of CPU, backlog ${BACKLOG} events; closed loop: wrk ${CONNECTIONS} keep-alive connections, ${SECONDS} s; open loop: bench/lib/open-loop.js, ${Math.round(openRate)} req/s (70 % of the ${Math.round(httpOnly.capacity)} req/s that client answered HTTP only, sending on each connection as soon as the last answer arrived) over ${CONNECTIONS} keep-alive connections for ${SECONDS} s after a 1 s warm-up, latency from when each request fell due; drain: ${DRAIN_BACKLOG} fresh events, no HTTP. Sent / answered / lost: requests written, answered, and never answered (wrk's last request per connection is in flight at its stop, not lost; the open loop waits up to 10 s after the last request fell due, and a request due but never written within that counts as an error, not as sent). ${machineNote()}; load average before ${loadBefore}, after ${loadAfter}.`,
  '',
  '| run | (a) closed-loop req/s (× HTTP only) | p50 ms | (a) sent / answered / lost | events/s during (a) | (b) open-loop p99 ms (× HTTP only) | (b) sent / answered / lost | events/s during (b) | (c) drain events/s (× fixed) |',
  '|---|---|---|---|---|---|---|---|---|',
  ...rows,
  '',
  `Goals: (a) valve ≥ 0.9× HTTP only: ${(valve.closed.rps / base.closed.rps).toFixed(2)}×; (b) valve p99 ≤ 1.3× HTTP only: ${openVerdict}; (c) valve drain ≥ 0.9× fixed: ${(valve.drainEventsPerSecond / fixed.drainEventsPerSecond).toFixed(2)}×.`,
].join('\n');
console.log(table);
writeBenchmarkSection('valve', table);
