/**
 * Chaos at full size: 20,000 events per source and 22 faults (kill -9 of workers and of the services
 * sibling, backends terminated, broker connections cut, RabbitMQ and PostgreSQL restarted) under HTTP load.
 * Run it alone: it restarts the machine's RabbitMQ and PostgreSQL.
 */
import { execFileSync } from 'node:child_process';
import { loadavg } from 'node:os';
import { type ChaosEnv, cleanupChaos, startChaosApp } from '../test/helpers/chaos.js';
import {
  type ChaosReport,
  type FaultKind,
  recoveryByKind,
  recoveryOverall,
  runChaos,
} from '../test/helpers/chaos-run.js';
import { freePort } from '../test/helpers/process.js';
import { machineNote, writeBenchmarkSection } from './lib/load.js';

const TOTAL = Number(process.env.CHAOS_EVENTS ?? 20_000);
const CLIENTS = 8;
/** Production time of the chaos phase; the baseline sends a quarter of the events in a quarter of it. */
const SECONDS = Number(process.env.CHAOS_SECONDS ?? 80);
const FAULTS: FaultKind[] = [
  'worker-kill',
  'sibling-kill',
  'pg-terminate',
  'amqp-cut',
  'worker-kill',
  'rabbitmq-restart',
  'sibling-kill',
  'worker-kill',
  'pg-terminate',
  'amqp-cut',
  'sibling-kill',
  'pg-restart',
  'worker-kill',
  'amqp-cut',
  'sibling-kill',
  'pg-terminate',
  'worker-kill',
  'rabbitmq-restart',
  'amqp-cut',
  'sibling-kill',
  'pg-terminate',
  'worker-kill',
];

// CHAOS_SAFE=1 leaves the shared RabbitMQ and PostgreSQL running (a quick check while other work runs).
const faults = process.env.CHAOS_SAFE ? FAULTS.filter((kind) => !kind.endsWith('-restart')) : FAULTS;
const common = { clients: CLIENTS, amqpRefuseMs: 1_000, recoveryTimeoutMs: 60_000, drainTimeoutMs: 120_000 };

async function phase(name: string, run: (env: ChaosEnv) => Promise<ChaosReport>): Promise<ChaosReport> {
  let env: ChaosEnv | undefined;
  try {
    env = await startChaosApp(await freePort());
    console.log(`${name}: running`);
    return await run(env);
  } finally {
    await cleanupChaos(env);
  }
}

const httpRate = (report: ChaosReport) => report.http.ok / (report.http.loadMs / 1000);

function ensureServices(): void {
  execFileSync('bash', [new URL('../scripts/services-up.sh', import.meta.url).pathname], { stdio: 'ignore' });
}

ensureServices();
const loadBefore = loadavg()[0]!;
// Baseline: the same app, load and production pace, no fault.
const baseline = await phase('baseline', (env) =>
  runChaos(env, { ...common, total: TOTAL / 4, durationMs: SECONDS * 250, faults: [], gapMs: 0 }),
);
const chaos = await phase('chaos', (env) =>
  runChaos(env, {
    ...common,
    total: TOTAL,
    durationMs: SECONDS * 1000,
    faults,
    gapMs: 1_000,
    log: (line) => console.log(line),
  }),
);
ensureServices();
const loadAfter = loadavg()[0]!;

const kinds = recoveryByKind(chaos.faults);
const overall = recoveryOverall(chaos.faults);
const lines = [
  `${TOTAL} events per source, ${chaos.faults.length} faults (${machineNote()}; load average ${loadBefore.toFixed(1)}`,
  `before, ${loadAfter.toFixed(1)} after).`,
  `2 HTTP workers under ${CLIENTS} keep-alive clients, the services sibling running an AMQP listener and a`,
  'PostgreSQL queue whose handlers record every event id in a results table. `npm run bench:chaos`.',
  '',
  '| | AMQP | PostgreSQL queue |',
  '|---|---|---|',
  `| events sent | ${chaos.sources.amqp.sent} | ${chaos.sources.pg.sent} |`,
  `| handled at least once | ${chaos.sources.amqp.handled} | ${chaos.sources.pg.handled} |`,
  `| lost | ${chaos.sources.amqp.lost} | ${chaos.sources.pg.lost} |`,
  `| duplicated (extra handler runs) | ${chaos.sources.amqp.duplicates} | ${chaos.sources.pg.duplicates} |`,
  `| dead-lettered | n/a | ${chaos.deadLettered} |`,
  '',
  '| fault | count | recovery median | recovery max |',
  '|---|---|---|---|',
  ...kinds.map((k) => `| ${k.kind} | ${k.count} | ${k.medianMs} ms | ${k.maxMs} ms |`),
  `| all | ${chaos.faults.length} | ${overall.medianMs} ms | ${overall.maxMs} ms |`,
  '',
  `HTTP: ${chaos.http.ok} requests answered, ${chaos.http.failures} failed (${JSON.stringify(chaos.http.codes)}),`,
  `${chaos.http.attributable} of them on connections of killed workers: ${chaos.http.inFlightAtKill} in flight at`,
  `the kill (bound: ${chaos.http.bound}, the clients whose request could be on the killed worker; worst excess`,
  `over one kill's bound: ${chaos.http.worstKill}), ${chaos.http.afterKill} sent in the moment before the primary saw`,
  `the worker die. Producer batches retried: ${chaos.producerRetries}.`,
  '',
  `Against a fault-free baseline of the same run (same app, load and pace, ${TOTAL / 4} events per source):`,
  `HTTP ${httpRate(chaos).toFixed(0)} vs ${httpRate(baseline).toFixed(0)} requests/s answered`,
  `(×${(httpRate(chaos) / httpRate(baseline)).toFixed(2)}); every event recorded ${chaos.catchUpMs} ms after the last one was`,
  `produced vs ${baseline.catchUpMs} ms; the baseline lost ${baseline.sources.amqp.lost + baseline.sources.pg.lost} events`,
  `and failed ${baseline.http.failures} requests.`,
];
const body = lines.join('\n');
console.log(`\n${body}\n`);
console.log(JSON.stringify({ chaos, baseline }, null, 1).slice(0, 4000));
writeBenchmarkSection('chaos', body);
const lost = chaos.sources.amqp.lost + chaos.sources.pg.lost;
process.exit(lost === 0 && chaos.http.failures === chaos.http.attributable ? 0 : 1);
