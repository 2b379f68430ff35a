/// <reference lib="dom" />
/// <reference lib="dom.iterable" />
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, test } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { launchChromium } from './helpers/browser.js';
import { get, getJson, type Reply } from './helpers/http.js';
import { event, type Spawned, spawnFixture } from './helpers/process.js';

const TOKEN = 'dashboard-token-for-tests-0123456789';
/** How long a restarted services host stays visibly not running (its `slow-start` service). */
const READY_DELAY_MS = 2_500;
const spawned: Spawned[] = [];
let browser: Browser | undefined;

before(async () => {
  browser = await launchChromium();
});
after(async () => {
  for (const fixture of spawned) fixture.killAll();
  await browser?.close();
});

interface Status {
  workers: Array<{ pid: number; state: string }>;
  services: { pid: number; services: Array<{ name: string; state: string }> } | null;
}

async function startCluster(control: Record<string, unknown>) {
  const fixture = spawnFixture('services-app.js', {
    FIXTURE_OPTIONS: JSON.stringify({
      workers: 2,
      control: { port: 0, ...control },
    }),
    FIXTURE_SERVICES: 'dashboard-services.js',
    FIXTURE_READY_DELAY_MS: String(READY_DELAY_MS),
  });
  spawned.push(fixture);
  const listening = await fixture.waitForLog(event('control:listening'), 30_000, 'control:listening');
  await fixture.waitForLogs(event('worker:ready'), 2, 30_000);
  await fixture.waitForLog(event('services:running'), 30_000, 'services:running');
  return { fixture, base: `http://127.0.0.1:${listening.port as number}` };
}

/** Every console error and uncaught page error, to assert there were none. */
function watchErrors(page: Page): string[] {
  const errors: string[] = [];
  page.on('console', (message) => {
    if (message.type() === 'error') errors.push(message.text());
  });
  page.on('pageerror', (error) => errors.push(error.message));
  return errors;
}

/** The worker pids the page shows right now. */
function shownPids(page: Page): Promise<number[]> {
  return page.$$eval('#workers tbody tr[data-pid]', (rows) =>
    rows.map((row) => Number((row as HTMLElement).dataset.pid)),
  );
}

function post(url: string, headers: Record<string, string>): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const request = http.request(url, { method: 'POST', headers, agent: false }, (response) => {
      let body = '';
      response.setEncoding('utf8').on('data', (chunk: string) => {
        body += chunk;
      });
      response.on('end', () =>
        resolve({ status: response.statusCode ?? 0, headers: response.headers, body }),
      );
    });
    request.on('error', reject);
    request.end();
  });
}

test('the page shows the live workers, the pids of a rolling restart and a services host restarting', async () => {
  const { fixture, base } = await startCluster({});
  const page = await browser!.newPage();
  const errors = watchErrors(page);
  const response = await page.goto(`${base}/`);
  assert.equal(response?.status(), 200);

  const before = await getJson<Status>(`${base}/status`);
  const oldPids = before.workers.map((worker) => worker.pid).sort();
  await page.waitForFunction(
    (pids) => pids.every((pid) => document.querySelector(`#workers tr[data-pid="${pid}"]`)),
    oldPids,
    { timeout: 15_000 },
  );
  assert.deepEqual((await shownPids(page)).sort(), oldPids);
  assert.match(
    String(await page.textContent('#workers tbody')),
    /ready/,
    'the state is written, not only coloured',
  );

  // Real table markup: every table has column headers; every state badge carries its state as text.
  assert.equal(
    await page.$$eval('table', (tables) =>
      tables.every((table) => (table.tHead?.querySelectorAll('th[scope="col"]').length ?? 0) > 0),
    ),
    true,
  );
  assert.equal(
    await page.$$eval('.state', (badges) => badges.every((badge) => (badge.textContent ?? '').trim() !== '')),
    true,
  );

  // A service's last error in full (its stack on demand), with the password in its URL hidden.
  const flaky = page.locator('#services tr[data-service-error="flaky"]');
  await flaky.locator('details summary').waitFor({ timeout: 15_000 });
  assert.equal(
    await flaky.locator('details summary').textContent(),
    'connection refused: amqp://guest:***@broker.example:5672/events',
  );
  assert.match(String(await flaky.locator('details pre').textContent()), /dashboard-services\.js/);
  assert.doesNotMatch(await page.content(), /hunter2/);
  // Restarts column: the crash is counted once the service was started again.
  await page.waitForFunction(
    () =>
      /^[1-9]/.test(document.querySelectorAll('#services tr[data-service="flaky"] td')[9]?.textContent ?? ''),
    null,
    { timeout: 15_000 },
  );

  // SIGHUP: one replacement at a time (`recycle.concurrency` 1), each ready before its predecessor drains;
  // the page must show every replacement's pid within 3 s of the signal.
  const sighupAt = Date.now();
  process.kill(fixture.pid, 'SIGHUP');
  await page.waitForFunction(
    (pids) => {
      const shown = [...document.querySelectorAll('#workers tbody tr[data-pid]')].map((row) =>
        Number((row as HTMLElement).dataset.pid),
      );
      return shown.filter((pid) => !pids.includes(pid)).length >= pids.length;
    },
    oldPids,
    { timeout: 15_000, polling: 50 },
  );
  const newPidsShownMs = Date.now() - sighupAt;
  await page.waitForFunction(
    (pids) => {
      const rows = [...document.querySelectorAll('#workers tbody tr[data-pid]')] as HTMLElement[];
      return (
        rows.length === pids.length &&
        rows.every((row) => !pids.includes(Number(row.dataset.pid)) && /ready/.test(row.textContent ?? ''))
      );
    },
    oldPids,
    { timeout: 30_000, polling: 50 },
  );
  const onlyNewReadyMs = Date.now() - sighupAt;
  console.log(
    `# dashboard: new pids shown ${newPidsShownMs} ms after SIGHUP; only new, ready ${onlyNewReadyMs} ms`,
  );
  assert.ok(newPidsShownMs <= 3_000, `new pids shown after ${newPidsShownMs} ms (limit 3000 ms)`);
  const now = await getJson<Status>(`${base}/status`);
  assert.deepEqual(
    (await shownPids(page)).sort(),
    now.workers.map((worker) => worker.pid).sort(),
    'the page agrees with /status',
  );
  // The recycle timeline lists both recycles with their reason and timings.
  await page.waitForFunction(
    () => document.querySelectorAll('#recycles tbody tr td:nth-child(4)').length >= 2,
    null,
    {
      timeout: 15_000,
    },
  );
  assert.match(String(await page.textContent('#recycles tbody')), /rolling-restart/);
  assert.match(String(await page.textContent('#events tbody')), /cluster:rolling-restart:start/);

  // Record every state the service cell shows, so a transition between two polls cannot be missed.
  // A string, not a function: the test compiler would wrap a named inner function in a helper the page lacks.
  await page.evaluate(`
    window.seenStates = [];
    const table = document.querySelector('#services tbody');
    const note = () => {
      const state = table.querySelector('tr[data-service="slow-start"] td .state')?.textContent;
      if (state && window.seenStates.at(-1) !== state) window.seenStates.push(state);
    };
    new MutationObserver(note).observe(table, { childList: true, subtree: true, characterData: true });
    note();
  `);
  const hostPid = before.services!.pid;
  process.kill(hostPid, 'SIGKILL');
  await page.waitForFunction(
    (pid) => {
      const host = document.querySelector('#services-host')?.textContent ?? '';
      const state = document.querySelector('tr[data-service="slow-start"] td .state')?.textContent;
      return !host.includes(`pid ${pid},`) && state === 'running';
    },
    hostPid,
    { timeout: 30_000, polling: 50 },
  );
  const seen = await page.evaluate(() => (window as unknown as { seenStates: string[] }).seenStates);
  console.log(`# dashboard: services states shown after the host was killed: ${seen.join(' → ')}`);
  assert.equal(seen[0], 'running');
  const restarting = seen.findIndex((state) => state.startsWith('restarting'));
  assert.ok(restarting > 0, `a restarting state was shown: ${JSON.stringify(seen)}`);
  assert.equal(seen.at(-1), 'running', `then running: ${JSON.stringify(seen)}`);
  assert.match(String(await page.textContent('#events tbody')), /services:crash/);

  assert.deepEqual(errors, [], 'no console errors');
  await page.close();
});

test('with a token: the page needs it, actions need it as a bearer token and run from the page', async () => {
  const { fixture, base } = await startCluster({ token: TOKEN });
  // Without credentials the browser is asked for a login, which automation declines: the answer the
  // server gave is read from the response event.
  const anonymous = await browser!.newContext();
  const anonymousPage = await anonymous.newPage();
  const answered = anonymousPage.waitForResponse(`${base}/`);
  await anonymousPage.goto(`${base}/`).catch(() => undefined);
  assert.equal((await answered).status(), 401, 'the page without the token');
  await anonymous.close();
  const wrong = await browser!.newContext({ httpCredentials: { username: 'operator', password: 'wrong' } });
  assert.equal(
    (await (await wrong.newPage()).goto(`${base}/`))?.status(),
    401,
    'the page with a wrong token',
  );
  await wrong.close();

  // A browser logs in with Basic (the token as password); the page's own polls reuse that login.
  const context = await browser!.newContext({ httpCredentials: { username: 'operator', password: TOKEN } });
  const page = await context.newPage();
  const errors = watchErrors(page);
  assert.equal((await page.goto(`${base}/`))?.status(), 200);
  const auth = { authorization: `Bearer ${TOKEN}` };
  const oldPids = (await getJson<Status>(`${base}/status`, auth)).workers.map((worker) => worker.pid);
  await page.waitForFunction(
    (pids) => pids.every((pid) => document.querySelector(`#workers tr[data-pid="${pid}"]`)),
    oldPids,
    { timeout: 15_000 },
  );
  assert.equal(await page.isVisible('#actions-section'), true, 'actions are offered with a token');

  // Refusals: a GET, a Basic login alone, a cross-site request, a form body type, and no token at all.
  const basic = `Basic ${Buffer.from(`operator:${TOKEN}`).toString('base64')}`;
  assert.equal((await get(`${base}/actions/recycle-workers`, { headers: auth })).status, 405);
  assert.equal((await post(`${base}/actions/recycle-workers`, { authorization: basic })).status, 401);
  const crossSite = { ...auth, 'sec-fetch-site': 'cross-site' };
  assert.equal((await post(`${base}/actions/recycle-workers`, crossSite)).status, 403);
  const foreign = { ...auth, origin: 'http://attacker.example' };
  assert.equal((await post(`${base}/actions/recycle-workers`, foreign)).status, 403);
  const form = { ...auth, 'content-type': 'application/x-www-form-urlencoded' };
  const formReply = await post(`${base}/actions/recycle-workers`, form);
  assert.equal(formReply.status, 415);
  assert.equal(JSON.parse(formReply.body).error.code, 'STEWARD_ERR_CONTROL_ACTION_REFUSED');
  assert.equal((await post(`${base}/actions/recycle-workers`, {})).status, 401);
  assert.equal(fixture.logs.filter(event('control:action')).length, 0, 'no refused request ran');

  // The page's own button, with the token typed in: every worker is replaced.
  await page.fill('#action-token', TOKEN);
  await page.click('button[data-action="recycle-workers"]');
  await page.waitForFunction(
    () => /accepted/.test(document.querySelector('#action-result')?.textContent ?? ''),
    null,
    {
      timeout: 15_000,
    },
  );
  await fixture.waitForLog(event('control:action', { action: 'recycle-workers' }), 15_000, 'control:action');
  await page.waitForFunction(
    (pids) => {
      const rows = [...document.querySelectorAll('#workers tbody tr[data-pid]')] as HTMLElement[];
      return rows.length === pids.length && rows.every((row) => !pids.includes(Number(row.dataset.pid)));
    },
    oldPids,
    { timeout: 30_000, polling: 100 },
  );
  assert.deepEqual(errors, [], 'no console errors');
  await context.close();
});

test('without a token actions are refused and dashboard.json serves the lifecycle events after a sequence', async () => {
  const { base } = await startCluster({});
  const refused = await post(`${base}/actions/restart-services`, {});
  assert.equal(refused.status, 403);
  assert.match(JSON.parse(refused.body).error.message, /control\.token/);
  const all = await getJson<{ lastSeq: number; events: Array<{ seq: number; event: string }> }>(
    `${base}/dashboard.json`,
  );
  assert.ok(all.events.some((entry) => entry.event === 'worker:ready'));
  assert.equal(all.events.at(-1)!.seq, all.lastSeq);
  const middle = all.events[Math.floor(all.events.length / 2)]!.seq;
  const later = await getJson<{ events: Array<{ seq: number }> }>(`${base}/dashboard.json?after=${middle}`);
  assert.ok(later.events.length > 0);
  assert.ok(later.events.every((entry) => entry.seq > middle));
  const page = await get(`${base}/`);
  const script = /<script nonce="[^"]+">([\s\S]*)<\/script>/.exec(page.body)?.[1] ?? '';
  assert.ok(script.length > 0);
  assert.ok(
    Buffer.byteLength(page.body) < 50 * 1024,
    `page and script: ${Buffer.byteLength(page.body)} bytes`,
  );
  assert.match(String(page.headers['content-security-policy']), /script-src 'nonce-/);
});
