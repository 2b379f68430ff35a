/** PostgreSQL event queue: backlog drain (events/s vs a raw batched SQL loop) and NOTIFY latency p50/p99. */
import pg from 'pg';
import pino from 'pino';
import { enqueue, migrate, pgEventQueue, queueNames } from '../lib/pg.js';
import { ServiceRecord } from '../lib/services/service-record.js';
import type { Service } from '../lib/services/types.js';
import { machineNote, writeBenchmarkSection } from './lib/load.js';

const BASE = process.env.STEWARD_BENCH_PG ?? 'postgres://postgres@127.0.0.1:5432/test';
const BACKLOG = Number(process.env.BACKLOG ?? 100_000);
const BATCH = Number(process.env.BATCH ?? 1_000);
const LATENCY_RATE = 200; // events/s: a light steady rate
const LATENCY_SECONDS = 5;
const schema = `steward_bench_${process.pid}`;
const url = new URL(BASE);
url.searchParams.set('application_name', `steward-bench-queue-${process.pid}`);
const connectionString = url.href;
const names = queueNames(schema, 'events');
const logger = pino({ level: 'warn' });

async function fill(pool: pg.Pool, count: number): Promise<void> {
  const chunk = 10_000;
  for (let done = 0; done < count; done += chunk) {
    const n = Math.min(chunk, count - done);
    await enqueue(
      pool,
      Array.from({ length: n }, (_, i) => ({ type: 'noop', payload: { i: done + i } })),
      { schema },
    );
  }
  await pool.query(`VACUUM ANALYZE ${names.events}`);
}

/**
 * The baseline: claim a batch with UPDATE ... SKIP LOCKED, delete it, repeat, on one connection. It uses the
 * same `id = ANY(ARRAY(...))` form as the queue (an `IN (...)` join hashes the whole table per batch).
 */
async function drainRaw(pool: pg.Pool): Promise<number> {
  const started = performance.now();
  for (;;) {
    const { rows } = await pool.query<{ id: string }>(
      `UPDATE ${names.events} SET locked_by = 'raw', locked_until = now() + interval '30 seconds'
        WHERE id = ANY(ARRAY(SELECT id FROM ${names.events} WHERE locked_until IS NULL ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED))
        RETURNING id`,
      [BATCH],
    );
    if (rows.length === 0) break;
    await pool.query(`DELETE FROM ${names.events} WHERE id = ANY($1::bigint[])`, [rows.map((r) => r.id)]);
  }
  return performance.now() - started;
}

function start(service: Service) {
  const controller = new AbortController();
  const record = new ServiceRecord(service.name, false);
  const done = service.run(record.createContext(controller.signal, logger));
  return { record, stop: () => (controller.abort(), done) };
}

/** From the first handler call (connections and migrations done) to the last completion committed. */
async function drainQueue(pool: pg.Pool): Promise<number> {
  let started = 0;
  const consumer = start(
    pgEventQueue({
      name: 'bench',
      connectionString,
      schema,
      batchSize: BATCH,
      concurrency: 100,
      handlers: {
        noop: () => {
          if (started === 0) started = performance.now();
        },
      },
    }),
  );
  for (;;) {
    await new Promise((resolve) => setTimeout(resolve, 5));
    if (consumer.record.status.processed < BACKLOG) continue;
    const { rows } = await pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${names.events}`);
    if (rows[0]!.n === 0) break;
  }
  const elapsed = performance.now() - started;
  await consumer.stop();
  return elapsed;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

async function measureLatency(pool: pg.Pool): Promise<{ p50: number; p99: number; count: number }> {
  const latencies: number[] = [];
  const consumer = start(
    pgEventQueue({
      name: 'latency',
      connectionString,
      schema,
      handlers: {
        ping: (event) => void latencies.push(performance.now() - (event.payload as { t: number }).t),
      },
    }),
  );
  while (consumer.record.status.state !== 'running') await new Promise((resolve) => setTimeout(resolve, 10));
  const total = LATENCY_RATE * LATENCY_SECONDS;
  for (let i = 0; i < total; i++) {
    await new Promise((resolve) => setTimeout(resolve, 1_000 / LATENCY_RATE));
    await enqueue(pool, { type: 'ping', payload: { t: performance.now() } }, { schema });
  }
  while (latencies.length < total) await new Promise((resolve) => setTimeout(resolve, 20));
  await consumer.stop();
  const sorted = latencies.sort((a, b) => a - b);
  return { p50: percentile(sorted, 50), p99: percentile(sorted, 99), count: sorted.length };
}

const pool = new pg.Pool({ connectionString, max: 2 });
try {
  await migrate(pool, names);
  await fill(pool, BACKLOG);
  const rawMs = await drainRaw(pool);
  await fill(pool, BACKLOG);
  const queueMs = await drainQueue(pool);
  // Steady state for the latency run: the drains left 200,000 dead rows that autovacuum has not reclaimed yet.
  await pool.query(`VACUUM ANALYZE ${names.events}`);
  const latency = await measureLatency(pool);
  const raw = BACKLOG / (rawMs / 1_000);
  const queue = BACKLOG / (queueMs / 1_000);
  const ratio = queue / raw;
  const met = (ok: boolean) => (ok ? 'met' : 'not met');
  const body = `
Drain of a ${BACKLOG.toLocaleString('en')}-event backlog with a no-op handler (batch ${BATCH}), and enqueue-to-handler
latency with NOTIFY at ${LATENCY_RATE} events/s for ${LATENCY_SECONDS} s (one enqueue per transaction); ${machineNote()}, PostgreSQL on the same machine.

| drain | events/s | ratio to raw | seconds |
| --- | ---: | ---: | ---: |
| raw batched \`UPDATE ... SKIP LOCKED\` + \`DELETE\` loop | ${Math.round(raw)} | 1.000 | ${(rawMs / 1_000).toFixed(2)} |
| pgEventQueue (concurrency 100) | ${Math.round(queue)} | ${ratio.toFixed(3)} | ${(queueMs / 1_000).toFixed(2)} |

| latency (${latency.count} events) | ms |
| --- | ---: |
| p50 | ${latency.p50.toFixed(2)} |
| p99 | ${latency.p99.toFixed(2)} |

Goals: >= 10,000 events/s: **${Math.round(queue)}** (${met(queue >= 10_000)}); >= 0.7 of raw: **${ratio.toFixed(3)}** (${met(ratio >= 0.7)});
p50 <= 2 ms: **${latency.p50.toFixed(2)}** (${met(latency.p50 <= 2)}); p99 <= 6 ms: **${latency.p99.toFixed(2)}** (${met(latency.p99 <= 6)}).
`;
  console.log(body);
  if (process.env.BENCH_NO_WRITE !== '1') writeBenchmarkSection('pg-queue', body);
} finally {
  await pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await pool.end();
}
