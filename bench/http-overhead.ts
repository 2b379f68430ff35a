/**
 * Hello world, 2 workers, keep-alive load from wrk (a separate process): bare node:cluster vs throng vs
 * cluster-steward, interleaved rounds in the same run. Goal: cluster-steward / bare >= 0.97 req/s.
 */
import { type LoadResult, machineNote, median, runWrk, startApp, writeBenchmarkSection } from './lib/load.js';

const ROUNDS = Number(process.env.ROUNDS ?? 3);
const SECONDS = Number(process.env.SECONDS ?? 8);
const CONNECTIONS = Number(process.env.CONNECTIONS ?? 50);
const apps = [
  { name: 'bare node:cluster', file: 'apps/hello-bare.js' },
  { name: 'throng', file: 'apps/hello-throng.js' },
  { name: 'cluster-steward', file: 'apps/hello-steward.js' },
];

const results = new Map<string, LoadResult[]>(apps.map((app) => [app.name, []]));
for (let round = 1; round <= ROUNDS; round++) {
  for (const app of apps) {
    const running = await startApp(app.file);
    await runWrk(running.url, CONNECTIONS, 2); // warm-up: JIT and both workers accepting
    const result = await runWrk(running.url, CONNECTIONS, SECONDS);
    await running.stop();
    results.get(app.name)!.push(result);
    console.log(
      `round ${round} ${app.name}: ${Math.round(result.rps)} req/s, p99 ${result.p99Ms} ms, errors ${result.errors}`,
    );
  }
}

const bareRps = median(results.get('bare node:cluster')!.map((r) => r.rps));
const bareP99 = median(results.get('bare node:cluster')!.map((r) => r.p99Ms));
const rows = apps.map((app) => {
  const runs = results.get(app.name)!;
  const rps = median(runs.map((r) => r.rps));
  const p99 = median(runs.map((r) => r.p99Ms));
  const errors = runs.reduce((sum, r) => sum + r.errors, 0);
  return `| ${app.name} | ${Math.round(rps)} | ${(rps / bareRps).toFixed(3)} | ${p99.toFixed(2)} | ${(p99 / bareP99).toFixed(2)} | ${errors} |`;
});
const stewardRatio = median(results.get('cluster-steward')!.map((r) => r.rps)) / bareRps;
const table = [
  `wrk, ${CONNECTIONS} keep-alive connections, ${SECONDS} s per run, median of ${ROUNDS} interleaved rounds; ${machineNote()}.`,
  '',
  '| server | req/s | ratio to bare | p99 ms | p99 ratio | errors |',
  '| --- | ---: | ---: | ---: | ---: | ---: |',
  ...rows,
  '',
  `Goal cluster-steward / bare >= 0.97 req/s: **${stewardRatio.toFixed(3)}** (${stewardRatio >= 0.97 ? 'met' : 'not met'}).`,
].join('\n');
console.log(`\n${table}`);
writeBenchmarkSection('http-overhead', table);
