import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { addressFromReady, get } from './helpers/http.js';
import { event, type Spawned, spawnFixture, until } from './helpers/process.js';
import { type Sample, scrape, total } from './helpers/prometheus.js';

const spawned: Spawned[] = [];
after(() => {
  for (const fixture of spawned) fixture.killAll();
});

function start(options: Record<string, unknown>, env: Record<string, string> = {}): Spawned {
  const fixture = spawnFixture('metrics-cluster.js', {
    FIXTURE_OPTIONS: JSON.stringify({ control: { port: 0 }, ...options }),
    ...env,
  });
  spawned.push(fixture);
  return fixture;
}

async function ready(fixture: Spawned, workers: number): Promise<{ port: number; address: string }> {
  const listening = await fixture.waitForLog(event('control:listening'), 15_000, 'control:listening');
  const lines = await fixture.waitForLogs(event('worker:ready'), workers, 20_000);
  return { port: listening.port as number, address: addressFromReady(lines[0]!) };
}

/** Sends `count` requests, each on a fresh connection; returns how many were answered 200. */
async function send(address: string, count: number, path = '/r'): Promise<number> {
  let answered = 0;
  for (let i = 0; i < count; i++) if ((await get(`http://${address}${path}`)).status === 200) answered++;
  return answered;
}

const appRequests = (samples: Sample[]) => total(samples, 'app_requests_total', { path: '/r' });

test('cluster totals equal the requests sent, and stay monotonic across 10 recycles', async () => {
  const fixture = start({ workers: 2 });
  const { port, address } = await ready(fixture, 2);
  // No scrape before the first two workers retire: only their final reports can account for these.
  let sent = await send(address, 40);
  fixture.child.kill('SIGHUP');
  await fixture.waitForLog(event('cluster:rolling-restart:done'), 30_000, 'first rolling restart');
  let samples = await scrape(port);
  assert.equal(total(samples, 'steward_worker_exits_total', { cause: 'retired' }), 2);
  assert.equal(appRequests(samples), sent);
  assert.equal(total(samples, 'steward_worker_requests_total'), sent);

  let previous = sent;
  let scrapes = 0;
  // SIGHUP replaces both workers one after the other: five rolling restarts retire ten workers.
  for (let round = 2; round <= 5; round++) {
    let finished = false;
    const done = fixture
      .waitForLogs(event('cluster:rolling-restart:done'), round, 40_000)
      .then(() => (finished = true));
    fixture.child.kill('SIGHUP');
    while (!finished) {
      sent += await send(address, 5);
      const counted = appRequests(await scrape(port));
      scrapes++;
      assert.ok(counted >= previous, `the total went down from ${previous} to ${counted} (round ${round})`);
      assert.ok(counted <= sent, `counted ${counted} requests but only ${sent} were sent`);
      previous = counted;
    }
    await done;
  }
  sent += await send(address, 10);
  samples = await scrape(port);
  assert.equal(total(samples, 'steward_worker_exits_total', { cause: 'retired' }), 10);
  assert.equal(total(samples, 'steward_worker_recycles_total'), 10);
  assert.equal(total(samples, 'steward_worker_drain_seconds_count'), 10);
  assert.equal(total(samples, 'steward_worker_boot_seconds_count'), 12, 'two at start, ten replacements');
  assert.equal(appRequests(samples), sent, 'application counter: every request of every retired worker');
  assert.equal(total(samples, 'app_request_seconds_count'), sent, 'application histogram');
  assert.equal(total(samples, 'steward_worker_requests_total'), sent, 'library request counter');
  assert.equal(total(samples, 'steward_workers', { state: 'ready' }), 2);
  assert.ok(scrapes >= 4, `scraped ${scrapes} times during the recycles`);
  // Process metrics are summed per role: both live workers, plus the retired workers' CPU time.
  assert.ok(total(samples, 'process_resident_memory_bytes', { role: 'worker' }) > 0);
  assert.ok(total(samples, 'process_resident_memory_bytes', { role: 'primary' }) > 0);
  fixture.child.kill('SIGTERM');
  assert.equal((await fixture.exited).code, 0);
});

test('a worker blocking its event loop for 10 s is left out of the scrape and counted as an error', async () => {
  const fixture = start({ workers: 2, control: { port: 0, metricsTimeout: 500 } });
  const { port, address } = await ready(fixture, 2);
  const sent = await send(address, 20);
  assert.equal(appRequests(await scrape(port)), sent);

  const blocked = get(`http://${address}/block?delay=10000`, { timeoutMs: 30_000 });
  let during: Sample[] = [];
  await until(
    async () => {
      const started = Date.now();
      during = await scrape(port);
      const ms = Date.now() - started;
      assert.ok(ms < 2_500, `a scrape took ${ms} ms with a 500 ms collect timeout`);
      return total(during, 'steward_scrape_errors_total', { role: 'worker' }) >= 1;
    },
    8_000,
    'a scrape error for the blocked worker',
  );
  // The blocked worker's counters stand at its last successful collect: no dip, no reset.
  assert.equal(appRequests(during), sent);
  assert.equal(total(during, 'steward_scrape_errors_total', { role: 'sibling' }), 0);
  // Its gauges are left out: only one worker's memory is in the sum.
  assert.equal(total(during, 'steward_workers', { state: 'ready' }), 2);

  assert.equal((await blocked).status, 200);
  const afterwards = await scrape(port);
  assert.equal(total(afterwards, 'app_requests_total', { path: '/block' }), 1);
  assert.equal(appRequests(afterwards), sent);
  // The late answers to the timed-out collects are dropped, never merged.
  assert.ok(total(afterwards, 'steward_ipc_dropped_total', { reason: 'unexpected_reply' }) >= 1);
  fixture.child.kill('SIGTERM');
  assert.equal((await fixture.exited).code, 0);
});

test("the services sibling's metrics appear, and its counters survive a restart of the sibling", async () => {
  const fixture = start({ workers: 1 }, { FIXTURE_SERVICES: 'metrics-services.js' });
  const { port } = await ready(fixture, 1);
  const processed = { service: 'ticker', outcome: 'processed' };
  const failed = { service: 'ticker', outcome: 'failed' };
  let samples: Sample[] = [];
  await until(
    async () => {
      samples = await scrape(port);
      return total(samples, 'steward_events_total', failed) > 0;
    },
    15_000,
    'events from the sibling',
  );
  assert.equal(total(samples, 'steward_service_up', { service: 'ticker' }), 1);
  assert.equal(total(samples, 'steward_service_state', { service: 'ticker', state: 'running' }), 1);
  assert.equal(total(samples, 'steward_service_state', { service: 'ticker' }), 1, 'exactly one state');
  // One collect in one process: the handler histogram saw every counted event, from the first one.
  for (const labels of [processed, failed])
    assert.equal(
      total(samples, 'steward_event_handler_seconds_count', labels),
      total(samples, 'steward_events_total', labels),
    );
  assert.equal(total(samples, 'steward_queue_depth', { service: 'ticker' }), 7);
  assert.equal(total(samples, 'steward_event_lag_seconds', { service: 'ticker' }), 0.25);
  assert.equal(total(samples, 'steward_queue_oldest_seconds', { service: 'ticker' }), 1.5);
  assert.ok(total(samples, 'process_resident_memory_bytes', { role: 'sibling' }) > 0);
  assert.equal(total(samples, 'steward_scrape_errors_total'), 0);

  const before = total(samples, 'steward_events_total', processed);
  const firstSibling = fixture.logs.find(event('services:fork'))!.siblingPid;
  fixture.child.kill('SIGUSR2');
  await fixture.waitForLog(
    (line) => line.msg === 'services:fork' && line.siblingPid !== firstSibling,
    15_000,
    'a new sibling',
  );
  await until(
    async () => {
      samples = await scrape(port);
      const counted = total(samples, 'steward_events_total', processed);
      assert.ok(counted >= before, `events went down from ${before} to ${counted} across the restart`);
      // The new sibling has handled events of its own on top of the old one's carried total.
      return total(samples, 'steward_service_up', { service: 'ticker' }) === 1 && counted > before + 20;
    },
    15_000,
    'the new sibling counting on top of the old total',
  );
  fixture.child.kill('SIGTERM');
  assert.equal((await fixture.exited).code, 0);
});

test("with placement 'primary' the service metrics come from the primary itself", async () => {
  const fixture = start({ workers: 1, placement: 'primary' }, { FIXTURE_SERVICES: 'metrics-services.js' });
  const { port } = await ready(fixture, 1);
  const processed = { service: 'ticker', outcome: 'processed' };
  let samples: Sample[] = [];
  await until(
    async () => {
      samples = await scrape(port);
      return total(samples, 'steward_events_total', processed) > 0;
    },
    15_000,
    'events from the services hosted in the primary',
  );
  assert.equal(
    total(samples, 'steward_event_handler_seconds_count', processed),
    total(samples, 'steward_events_total', processed),
  );
  assert.equal(total(samples, 'steward_service_up', { service: 'ticker' }), 1);
  assert.equal(total(samples, 'process_resident_memory_bytes', { role: 'sibling' }), 0, 'no sibling process');
  fixture.child.kill('SIGTERM');
  assert.equal((await fixture.exited).code, 0);
});

test('a gracefully restarted sibling reports its final metrics: event totals stay exact', async () => {
  // Each sibling handles exactly 100 events (90 processed, 10 failed) in about 2 s, then idles.
  const fixture = start(
    { workers: 1 },
    { FIXTURE_SERVICES: 'metrics-services.js', FIXTURE_TICK_LIMIT: '100' },
  );
  const { port } = await ready(fixture, 1);
  const events = (samples: Sample[]) => total(samples, 'steward_events_total', { service: 'ticker' });
  /** Events handled by the sibling with this pid, as its own last status report says. */
  const handledBy = async (pid: unknown) => {
    const status = JSON.parse((await get(`http://127.0.0.1:${port}/status`)).body);
    if (status.services?.pid !== pid) return 0;
    const ticker = status.services.services.find((s: { name: string }) => s.name === 'ticker');
    return ticker ? ticker.processed + ticker.failed : 0;
  };
  // One scrape while the first sibling is busy: its last scraped figures fall short of its final ones.
  const early = await until(async () => events(await scrape(port)), 15_000, 'first events scraped');
  assert.ok(early < 100, `the first scrape already saw ${early} events`);
  const firstSibling = fixture.logs.find(event('services:fork'))!.siblingPid;
  await until(async () => (await handledBy(firstSibling)) === 100, 15_000, 'the first sibling done');
  fixture.child.kill('SIGUSR2');
  const second = await fixture.waitForLog(
    (line) => line.msg === 'services:fork' && line.siblingPid !== firstSibling,
    15_000,
    'a new sibling',
  );
  await until(async () => (await handledBy(second.siblingPid)) === 100, 15_000, 'the second sibling done');
  const samples = await scrape(port);
  assert.equal(events(samples), 200, 'the first sibling counted through its final report');
  assert.equal(total(samples, 'steward_events_total', { service: 'ticker', outcome: 'failed' }), 20);
  assert.equal(total(samples, 'steward_event_handler_seconds_count', { service: 'ticker' }), 200);
  fixture.child.kill('SIGTERM');
  assert.equal((await fixture.exited).code, 0);
});
