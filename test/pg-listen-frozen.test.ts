import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { adminQuery, countBackends, pgUrl, randomSuffix } from './helpers/pg.js';
import { event, type Spawned, spawnFixture, until } from './helpers/process.js';

const spawned: Spawned[] = [];
after(() => {
  for (const fixture of spawned) fixture.killAll();
});

test('a frozen listener lets go of its session (3 × checkInterval + checkTimeout) and listens again on resume', async (t) => {
  const application = `steward-test-listen-${randomSuffix()}`;
  const channel = `frozen_${randomSuffix()}`;
  const fixture = spawnFixture('../../dist/cli/main.js', { PG_URL: pgUrl(application), CHANNEL: channel }, [
    'services',
    'test/fixtures/pg-notify-frozen.js',
  ]);
  spawned.push(fixture);
  await fixture.waitForLog(event('pg:listen:connected'), 15_000, 'listening');
  assert.equal(await countBackends(application), 1);

  const frozenAt = Date.now();
  process.kill(fixture.pid, 'SIGSTOP');
  try {
    // 3 × 200 + 300 = 900 ms without a query: the server ends the session by itself.
    await until(
      async () => (await countBackends(application)) === 0,
      10_000,
      'the server to end the session',
    );
    t.diagnostic(`frozen listener's session ended ${Date.now() - frozenAt} ms after the freeze`);
  } finally {
    process.kill(fixture.pid, 'SIGCONT');
  }
  await fixture.waitForLog(event('pg:listen:connected', { reconnected: true }), 15_000, 'listening again');
  await adminQuery('SELECT pg_notify($1, $2)', [channel, 'after-resume']);
  await fixture.waitForLog(event('fixture:notified', { payload: 'after-resume' }), 10_000, 'notified');
  fixture.child.kill('SIGTERM');
  assert.equal((await fixture.exited).code, 0);
});
