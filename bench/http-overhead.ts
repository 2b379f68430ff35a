/**
 * Hello world, 2 workers, keep-alive load from wrk (a separate process): bare node:cluster vs throng vs
 * cluster-steward, interleaved rounds in the same run. Goals for cluster-steward against bare:
 * >= 0.98 req/s, <= 1.03x CPU per request, p99 <= 1.1x.
 */
import { loadavg } from 'node:os';
import {
  clusterCpuSeconds,
  type LoadResult,
  lostRequests,
  machineNote,
  median,
  runWrk,
  startApp,
  writeBenchmarkSection,
} from './lib/load.js';

const ROUNDS = Number(process.env.ROUNDS ?? 3);
const SECONDS = Number(process.env.SECONDS ?? 8);
const CONNECTIONS = Number(process.env.CONNECTIONS ?? 50);
const apps = [
  { name: 'bare node:cluster', file: 'apps/hello-bare.js' },
  { name: 'throng', file: 'apps/hello-throng.js' },
  { name: 'cluster-steward', file: 'apps/hello-steward.js' },
];

/** A wrk result plus the server's CPU microseconds per request (every process of the cluster). */
type Run = LoadResult & { cpuUsPerRequest: number };
const results = new Map<string, Run[]>(apps.map((app) => [app.name, []]));
const loadBefore = loadavg();
console.log(`load average before: ${loadBefore.map((n) => n.toFixed(2)).join(' ')}`);
for (let round = 1; round <= ROUNDS; round++) {
  // The order rotates every round, so no server always runs first (or right after a given other one).
  const order = apps.map((_, i) => apps[(i + round - 1) % apps.length]!);
  for (const app of order) {
    const running = await startApp(app.file);
    await runWrk(running.url, CONNECTIONS, 2); // warm-up: JIT and both workers accepting
    const cpuBefore = clusterCpuSeconds(running.child.pid!);
    const load = await runWrk(running.url, CONNECTIONS, SECONDS);
    const cpuUsPerRequest = ((clusterCpuSeconds(running.child.pid!) - cpuBefore) * 1e6) / load.requests;
    await running.stop();
    const result = { ...load, cpuUsPerRequest };
    results.get(app.name)!.push(result);
    console.log(
      `round ${round} ${app.name}: ${Math.round(result.rps)} req/s, p99 ${result.p99Ms} ms, ` +
        `${cpuUsPerRequest.toFixed(1)} CPU µs/req, sent ${result.sent}, answered ${result.requests}, ` +
        `lost ${lostRequests(result)}, errors ${result.errors}`,
    );
  }
}

const bareRps = median(results.get('bare node:cluster')!.map((r) => r.rps));
const bareP99 = median(results.get('bare node:cluster')!.map((r) => r.p99Ms));
const bareCpu = median(results.get('bare node:cluster')!.map((r) => r.cpuUsPerRequest));
const rows = apps.map((app) => {
  const runs = results.get(app.name)!;
  const rps = median(runs.map((r) => r.rps));
  const p99 = median(runs.map((r) => r.p99Ms));
  const cpu = median(runs.map((r) => r.cpuUsPerRequest));
  const errors = runs.reduce((sum, r) => sum + r.errors, 0);
  const sent = runs.reduce((sum, r) => sum + (r.sent ?? 0), 0);
  const answered = runs.reduce((sum, r) => sum + r.requests, 0);
  const lost = runs.reduce((sum, r) => sum + (lostRequests(r) ?? 0), 0);
  return `| ${app.name} | ${Math.round(rps)} | ${(rps / bareRps).toFixed(3)} | ${p99.toFixed(2)} | ${(p99 / bareP99).toFixed(2)} | ${cpu.toFixed(1)} | ${(cpu / bareCpu).toFixed(3)} | ${sent} | ${answered} | ${lost} | ${errors} |`;
});
const loadAfter = loadavg();
console.log(`load average after: ${loadAfter.map((n) => n.toFixed(2)).join(' ')}`);
const steward = results.get('cluster-steward')!;
const stewardRatio = median(steward.map((r) => r.rps)) / bareRps;
const stewardCpuRatio = median(steward.map((r) => r.cpuUsPerRequest)) / bareCpu;
const stewardP99Ratio = median(steward.map((r) => r.p99Ms)) / bareP99;
const met = (ok: boolean) => (ok ? 'met' : '**not met**');
const table = [
  `wrk, ${CONNECTIONS} keep-alive connections, ${SECONDS} s per run, median of ${ROUNDS} interleaved rounds (order rotated each round); ${machineNote()}; ` +
    `load average (1, 5, 15 min) ${loadBefore.map((n) => n.toFixed(2)).join(' ')} before, ${loadAfter.map((n) => n.toFixed(2)).join(' ')} after.`,
  '',
  '| server | req/s | ratio to bare | p99 ms | p99 ratio | CPU µs/req | CPU ratio | sent | answered | lost | errors |',
  '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
  ...rows,
  '',
  `- cluster-steward / bare req/s: **${stewardRatio.toFixed(3)}** (goal >= 0.98: ${met(stewardRatio >= 0.98)}).`,
  `- CPU per request (every process of the cluster, from /proc; wrk runs outside it), which depends far less on what else`,
  `  the machine runs than req/s: cluster-steward / bare **${stewardCpuRatio.toFixed(3)}** (goal <= 1.03: ${met(stewardCpuRatio <= 1.03)}).`,
  `- p99: cluster-steward / bare **${stewardP99Ratio.toFixed(2)}** (goal <= 1.1: ${met(stewardP99Ratio <= 1.1)}).`,
  `- Sent and answered are summed over the measured rounds; "lost" leaves out the one request per connection that`,
  `  may be in flight when wrk stops (its \`request()\` hook counts what it writes).`,
].join('\n');
console.log(`\n${table}`);
writeBenchmarkSection('http-overhead', table);
