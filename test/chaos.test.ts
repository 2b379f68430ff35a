import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { type ChaosEnv, cleanupChaos, startChaosApp } from './helpers/chaos.js';
import { type FaultKind, recoveryByKind, runChaos } from './helpers/chaos-run.js';
import { freePort } from './helpers/process.js';

// The reduced run; `npm run bench:chaos` is the full one (see docs/reliability.md). The shared RabbitMQ and
// PostgreSQL are never restarted here: other test files use them at the same time. A broker restart is
// played through a proxy (cut every connection, refuse new ones for a while) and PostgreSQL faults are
// terminations of this app's own backends.
const FAULTS: FaultKind[] = [
  'worker-kill',
  'sibling-kill',
  'pg-terminate',
  'amqp-cut',
  'worker-kill',
  'sibling-kill',
  'amqp-cut',
  'pg-terminate',
];

let env: ChaosEnv | undefined;
after(() => cleanupChaos(env));

test('under HTTP load, kill -9 of workers and sibling, cut broker and terminated backends lose no event', async () => {
  env = await startChaosApp(await freePort());
  const report = await runChaos(env, {
    total: 1_000,
    durationMs: 12_000,
    faults: FAULTS,
    gapMs: 300,
    clients: 6,
    amqpRefuseMs: 500,
    recoveryTimeoutMs: 20_000,
    drainTimeoutMs: 20_000,
  });
  const summary = JSON.stringify({ ...report, recovery: recoveryByKind(report.faults) });
  for (const source of ['amqp', 'pg'] as const) {
    const figures = report.sources[source];
    assert.equal(figures.lost, 0, `${source}: lost ${figures.lostSample.join(', ')}\n${summary}`);
    assert.equal(figures.handled, 1_000, `${source}: every event handled once at least`);
    assert.equal(figures.unexpected, 0, `${source}: no id that was never sent`);
    assert.ok(figures.duplicates >= 0);
  }
  assert.equal(report.deadLettered, 0, 'no event dead-lettered');
  assert.equal(report.faults.length, FAULTS.length, 'every fault recovered from');
  for (const fault of report.faults)
    assert.ok(fault.recoveryMs < 20_000, `${fault.kind}: ${fault.recoveryMs} ms`);
  // HTTP: only requests on a killed worker's connections may fail: those in flight at the kill (at most
  // one per client that worker was serving) and those sent before the primary saw it die.
  assert.ok(report.http.ok > 100, `HTTP kept serving: ${report.http.ok} ok`);
  assert.equal(
    report.http.failures,
    report.http.attributable,
    `every HTTP failure is on a killed worker\n${summary}`,
  );
  assert.equal(report.http.worstKill, 0, `in flight at a kill: within the bound\n${summary}`);
  assert.ok(report.http.inFlightAtKill <= report.http.bound);
  // The cluster is still whole and shuts down cleanly.
  env.app.child.kill('SIGTERM');
  assert.equal((await env.app.exited).code, 0);
  console.log(`# chaos ${summary}`);
});
