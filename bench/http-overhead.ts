/**
 * Hello world, 2 workers, keep-alive load from wrk (a separate process): bare node:cluster vs throng vs
 * cluster-steward, interleaved rounds in the same run. Goal: cluster-steward / bare >= 0.97 req/s.
 */
import {
  clusterCpuSeconds,
  type LoadResult,
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
        `${cpuUsPerRequest.toFixed(1)} CPU µs/req, errors ${result.errors}`,
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
  return `| ${app.name} | ${Math.round(rps)} | ${(rps / bareRps).toFixed(3)} | ${p99.toFixed(2)} | ${(p99 / bareP99).toFixed(2)} | ${cpu.toFixed(1)} | ${(cpu / bareCpu).toFixed(3)} | ${errors} |`;
});
const stewardRatio = median(results.get('cluster-steward')!.map((r) => r.rps)) / bareRps;
const stewardCpuRatio = median(results.get('cluster-steward')!.map((r) => r.cpuUsPerRequest)) / bareCpu;
const table = [
  `wrk, ${CONNECTIONS} keep-alive connections, ${SECONDS} s per run, median of ${ROUNDS} interleaved rounds (order rotated each round); ${machineNote()}.`,
  '',
  '| server | req/s | ratio to bare | p99 ms | p99 ratio | CPU µs/req | CPU ratio | errors |',
  '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
  ...rows,
  '',
  `Goal cluster-steward / bare >= 0.97 req/s: **${stewardRatio.toFixed(3)}** (${stewardRatio >= 0.97 ? 'met' : 'not met'}).`,
  `CPU per request (all processes of the cluster, from /proc; wrk runs outside it), which depends far less on what else`,
  `the machine runs than req/s: cluster-steward / bare = **${stewardCpuRatio.toFixed(3)}**, i.e. ${((1 / stewardCpuRatio) * 100).toFixed(1)}% of bare's throughput per CPU.`,
].join('\n');
console.log(`\n${table}`);
writeBenchmarkSection('http-overhead', table);
