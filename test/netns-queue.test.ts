import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import pg from 'pg';
import { enqueue } from '../lib/pg.js';
import { createLab, type Lab, netnsUnavailable, pgUrlThroughLab } from './helpers/netns.js';
import { adminQuery, dropSchema, PG_BASE, pgUrl, randomSuffix, testSchema } from './helpers/pg.js';
import { event, type Spawned, spawnFixture, until } from './helpers/process.js';

// Two hosts in their own network namespaces consume one PostgreSQL queue across their links. The first
// is frozen or cut off while it handles events; the second handles them once the leases expire; the
// first, back, must complete none of them.
const unavailable = netnsUnavailable();
const LEASE = 1_000;
let lab: Lab | undefined;
let pgUrlOnLab = '';
const spawned: Spawned[] = [];
const schemas: string[] = [];

before(async () => {
  if (unavailable) return;
  lab = await createLab(2);
  pgUrlOnLab = await pgUrlThroughLab(lab, PG_BASE);
});

after(async () => {
  for (const fixture of spawned) fixture.killAll();
  await Promise.all(spawned.map((fixture) => fixture.exited));
  await lab?.destroy();
  for (const schema of schemas) await dropSchema(schema);
});

function consumer(host: number, schema: string, env: Record<string, string>): Spawned {
  const fixture = spawnFixture(
    'pg-queue-consumer.js',
    { PG_URL: pgUrlOnLab, SCHEMA: schema, LEASE: String(LEASE), STEWARD_LOG_LEVEL: 'info', ...env },
    [],
    { wrapper: lab!.hosts[host]!.wrapper },
  );
  spawned.push(fixture);
  return fixture;
}

async function eventsLeft(schema: string): Promise<number> {
  const rows = await adminQuery<{ n: number }>(
    `SELECT (SELECT count(*) FROM "${schema}"."events")::int + (SELECT count(*) FROM "${schema}"."events_dead")::int AS n`,
  );
  return rows[0]!.n;
}

type Outage = { name: string; start(first: Spawned): void; end(first: Spawned): void };

const outages: Outage[] = [
  {
    name: 'frozen (SIGSTOP)',
    start: (first) => process.kill(first.pid, 'SIGSTOP'),
    end: (first) => process.kill(first.pid, 'SIGCONT'),
  },
  {
    name: 'cut off (link down)',
    start: () => lab!.hosts[0]!.partition(),
    end: () => lab!.hosts[0]!.heal(),
  },
];

for (const outage of outages) {
  test(`a consumer ${outage.name} past its lease completes none of the events handled elsewhere`, {
    skip: unavailable ?? false,
  }, async (t) => {
    const schema = testSchema();
    schemas.push(schema);
    const first = consumer(0, schema, { HANDLER: 'slow', SLOW_MS: '2500', CONCURRENCY: '4', BATCH: '4' });
    await first.waitForLog(event('fixture:running'), 20_000, 'first consumer running');
    const pool = new pg.Pool({
      connectionString: pgUrl(`steward-test-netns-queue-${randomSuffix()}`),
      max: 1,
    });
    t.after(() => pool.end());
    const ids = await enqueue(
      pool,
      Array.from({ length: 4 }, (_, n) => ({ type: 'work', payload: { n } })),
      { schema },
    );
    await first.waitForLogs(event('fixture:started'), 4, 15_000);

    const outageAt = Date.now();
    outage.start(first);
    let second: Spawned;
    try {
      second = consumer(1, schema, { HANDLER: 'record' });
      await until(
        () =>
          second.logs.filter(event('fixture:handled')).flatMap((line) => line.ids as string[]).length >=
          ids.length,
        20_000,
        'the second consumer to handle every event',
      );
      await until(
        async () => (await eventsLeft(schema)) === 0,
        10_000,
        'the second consumer to complete them',
      );
    } finally {
      outage.end(first);
    }
    const handedOverMs = Date.now() - outageAt;
    // Outcomes are written in batches: the refusals may come in more than one.
    const refused = () =>
      first.logs
        .filter(event('queue:complete:lease-lost'))
        .reduce((sum, line) => sum + (line.count as number), 0);
    await first.waitForLog(() => refused() >= ids.length, 30_000, 'the refused completions');
    t.diagnostic(`${outage.name}: events handled elsewhere within ${handedOverMs} ms`);
    assert.equal(refused(), ids.length, 'every completion of the returning consumer was refused');
    first.child.kill('SIGTERM');
    const exit = await first.waitForLog(event('fixture:exit'), 15_000, 'first consumer exit');
    assert.equal(exit.duplicates, ids.length, 'the refused completions are counted as duplicates');
    second.child.kill('SIGTERM');
    await second.exited;

    const handledBySecond = second.logs
      .filter(event('fixture:handled'))
      .flatMap((line) => line.ids as string[]);
    assert.deepEqual(
      [...handledBySecond].sort(),
      [...ids].sort(),
      'the second consumer handled each event once',
    );
    assert.equal(await eventsLeft(schema), 0, 'nothing left and nothing dead-lettered');
  });
}
