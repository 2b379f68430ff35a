// The control server under hostile clients: silent sockets, slowloris, a full connection budget. A
// legitimate scrape and /healthz must still get through, promptly, without the primary growing.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { after, test } from 'node:test';
import { runOptions } from '../lib/cli/run.js';
import type { StewardError } from '../lib/errors.js';
import { resolveOptions, type StewardOptions } from '../lib/options.js';
import { ConnectionBudget } from '../lib/primary/connection-budget.js';
import { get } from './helpers/http.js';
import { event, type Spawned, spawnFixture, until } from './helpers/process.js';

const TOKEN = 'hostile-control-token-0123456789';
const auth = { authorization: `Bearer ${TOKEN}` };
/** The issue asks for 60 s; `STEWARD_HOSTILE_SECONDS` shortens it for a quick local run. */
const DURATION_MS = Number(process.env.STEWARD_HOSTILE_SECONDS ?? 60) * 1000;
const IDLE_SOCKETS = 1000;
const SLOWLORIS_CLIENTS = 100;
const MiB = 1024 * 1024;
/** Scraping without hostile clients first: the idle value is the primary at its normal work. */
const WARM_UP_MS = Math.min(10_000, DURATION_MS);

const spawned: Spawned[] = [];
after(() => {
  for (const fixture of spawned) fixture.killAll();
});

function rssOf(pid: number): number {
  const kib = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
  return Number(kib) * 1024;
}

/**
 * Authenticated scrapes, one every 500 ms (back to back when one is slower), for `durationMs`: each
 * must answer 200 with the cluster's metrics in under 1 s. Returns every duration in ms.
 */
async function scrapeEvery500ms(
  base: string,
  durationMs: number,
  afterEach: (count: number, elapsedMs: number, body: string) => Promise<void> | void,
): Promise<number[]> {
  const durations: number[] = [];
  const begin = performance.now();
  while (performance.now() - begin < durationMs) {
    const started = performance.now();
    const scrape = await get(`${base}/metrics`, { headers: auth, timeoutMs: 5_000 });
    const ms = performance.now() - started;
    durations.push(ms);
    assert.equal(scrape.status, 200, `scrape ${durations.length}`);
    assert.match(scrape.body, /^steward_workers/m);
    assert.ok(ms < 1_000, `scrape ${durations.length} took ${ms.toFixed(0)} ms`);
    await afterEach(durations.length, performance.now() - begin, scrape.body);
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, 500 - (performance.now() - started))));
  }
  return durations;
}

/** The size of one of the primary's V8 heap spaces in bytes, from its own process metrics in a scrape. */
function heapSpaceOf(body: string, space: 'new' | 'old'): number {
  const line = new RegExp(
    `^nodejs_heap_space_size_total_bytes\\{space="${space}",role="primary"\\} (\\d+)`,
    'm',
  );
  return Number(line.exec(body)?.[1] ?? 0);
}

/** The primary's V8 young generation (new space) in bytes. */
function youngGenerationOf(body: string): number {
  return heapSpaceOf(body, 'new');
}

/** Clients that keep `count` sockets open against the port: a dropped one reconnects at once. */
class HostileClients {
  readonly #sockets = new Set<net.Socket>();
  #stopped = false;
  connects = 0;
  drops = 0;

  constructor(
    readonly port: number,
    readonly count: number,
    /** What a client does once connected: nothing (idle), or trickle a request head (slowloris). */
    readonly behave: (socket: net.Socket) => void,
  ) {}

  /** Resolves once every socket has connected once. */
  async start(): Promise<void> {
    const first: Array<Promise<void>> = [];
    for (let i = 0; i < this.count; i++) first.push(this.#open());
    await Promise.all(first);
  }

  get open(): number {
    return this.#sockets.size;
  }

  #open(): Promise<void> {
    return new Promise((resolve) => {
      const socket = net.connect(this.port, '127.0.0.1');
      this.#sockets.add(socket);
      socket.once('connect', () => {
        this.connects += 1;
        this.behave(socket);
        resolve();
      });
      socket.on('error', () => {});
      socket.on('data', () => {});
      socket.once('close', () => {
        this.#sockets.delete(socket);
        resolve();
        if (this.#stopped) return;
        this.drops += 1;
        void this.#open();
      });
    });
  }

  stop(): void {
    this.#stopped = true;
    for (const socket of this.#sockets) socket.destroy();
  }
}

/** Sends a request head one header line a second, never finishing it. */
function slowloris(socket: net.Socket): void {
  socket.write('GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n');
  const trickle = setInterval(() => {
    if (socket.destroyed) clearInterval(trickle);
    else socket.write(`X-Slow-${Math.floor(Math.random() * 1e6)}: a\r\n`);
  }, 1_000);
  socket.once('close', () => clearInterval(trickle));
}

test('1,000 idle sockets and 100 slowloris clients held open: every authenticated scrape answers in under 1 s, memory stays bounded', async (t) => {
  const fixture = spawnFixture('metrics-cluster.js', {
    FIXTURE_OPTIONS: JSON.stringify({ workers: 1, control: { port: 0, token: TOKEN } }),
    FIXTURE_SERVICES: 'metrics-services.js',
    // Every 401 would be a debug line; the primary's logging is not what is measured.
    STEWARD_LOG_LEVEL: 'info',
  });
  spawned.push(fixture);
  const listening = await fixture.waitForLog(event('control:listening'), 20_000, 'control:listening');
  assert.equal(listening.auth, 'bearer');
  await fixture.waitForLog(event('worker:ready'), 20_000, 'worker:ready');
  const port = listening.port as number;
  const base = `http://127.0.0.1:${port}`;

  // Idle: the primary doing its normal job, scraped every 500 ms, without hostile clients. The first
  // scrapes allocate the aggregation's structures and let V8 size its heap for this rhythm.
  const startupRss = rssOf(fixture.pid);
  let idleYoung = 0;
  await scrapeEvery500ms(base, WARM_UP_MS, (_count, _elapsed, body) => {
    idleYoung = youngGenerationOf(body);
  });
  const idleRss = rssOf(fixture.pid);
  let maxYoung = idleYoung;

  const idle = new HostileClients(port, IDLE_SOCKETS, () => {});
  const slow = new HostileClients(port, SLOWLORIS_CLIENTS, slowloris);
  await Promise.all([idle.start(), slow.start()]);

  let maxRss = idleRss;
  let minOpen = Number.POSITIVE_INFINITY;
  const trajectory: string[] = [];
  let durations: number[];
  try {
    durations = await scrapeEvery500ms(base, DURATION_MS, async (count, elapsed, body) => {
      const rss = rssOf(fixture.pid);
      maxYoung = Math.max(maxYoung, youngGenerationOf(body));
      maxRss = Math.max(maxRss, rss);
      minOpen = Math.min(minOpen, idle.open + slow.open);
      if (count % 20 === 0)
        trajectory.push(
          `${Math.round(elapsed / 1000)}s:${(rss / MiB).toFixed(0)}/${(youngGenerationOf(body) / MiB).toFixed(0)}/${(heapSpaceOf(body, 'old') / MiB).toFixed(0)}`,
        );
      if (count % 10 === 0) {
        const health = await get(`${base}/healthz`, { headers: auth, timeoutMs: 5_000 });
        assert.equal(health.status, 200, health.body);
      }
    });
  } finally {
    idle.stop();
    slow.stop();
  }

  durations.sort((a, b) => a - b);
  const p = (q: number) => durations[Math.min(durations.length - 1, Math.floor(q * durations.length))]!;
  t.diagnostic(
    `${durations.length} scrapes over ${DURATION_MS / 1000} s: p50 ${p(0.5).toFixed(0)} ms, ` +
      `p99 ${p(0.99).toFixed(0)} ms, max ${p(1).toFixed(0)} ms; hostile sockets open (min) ${minOpen}, ` +
      `idle drops ${idle.drops}, slowloris drops ${slow.drops}; RSS idle ${(idleRss / MiB).toFixed(1)} MiB, ` +
      `max ${(maxRss / MiB).toFixed(1)} MiB (+${((maxRss - idleRss) / MiB).toFixed(1)} MiB; at startup ` +
      `${(startupRss / MiB).toFixed(1)} MiB); RSS/young/old space MiB over time ${trajectory.join(' ')}; ` +
      `V8 young generation ${(idleYoung / MiB).toFixed(0)} -> ${(maxYoung / MiB).toFixed(0)} MiB`,
  );
  assert.ok(durations.length >= Math.floor(DURATION_MS / 1_000), 'a scrape every 500 ms or so');
  // The goal: within 30 MiB of the idle value, with Node's default flags.
  assert.ok(
    maxRss - idleRss <= 30 * MiB,
    `RSS grew by ${((maxRss - idleRss) / MiB).toFixed(1)} MiB (young generation ${(idleYoung / MiB).toFixed(0)} -> ${(maxYoung / MiB).toFixed(0)} MiB)`,
  );
  // The silent sockets fit the budget, so they were kept rather than cut and reconnected.
  assert.equal(idle.drops, 0, 'silent sockets dropped');
  if (DURATION_MS >= 10_000) {
    // The request-head deadline (5 s from the first byte) cut the trickling clients, which reconnected.
    assert.ok(slow.drops >= SLOWLORIS_CLIENTS, `slowloris sockets dropped ${slow.drops} times`);
  }
});

test('the connection budget evicts unproven sockets first, oldest first, then idle authenticated ones', async () => {
  const budget = new ConnectionBudget(4, { head: 60_000, answer: 60_000 });
  const accepted: net.Socket[] = [];
  const server = net.createServer((socket) => {
    if (budget.admit(socket)) accepted.push(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  const clients: net.Socket[] = [];
  const closed = new Map<net.Socket, Promise<void>>();
  /** Connects and waits until the server has taken the socket in (or refused it). */
  const connect = async () => {
    const before = accepted.length + budget.evicted;
    const client = net.connect(port, '127.0.0.1');
    client.on('error', () => {});
    closed.set(client, new Promise((resolve) => client.once('close', () => resolve())));
    clients.push(client);
    await new Promise<void>((resolve) => client.once('connect', () => resolve()));
    while (accepted.length + budget.evicted === before && !client.destroyed)
      await new Promise((resolve) => setImmediate(resolve));
    return accepted.at(-1)!;
  };
  try {
    const [a, b, c, d] = [await connect(), await connect(), await connect(), await connect()];
    // a proved itself and is idle again; c is answering a request; b and d never sent anything.
    budget.requestStarted(a, true);
    budget.requestFinished(a);
    budget.requestStarted(c, true);
    assert.equal(budget.size, 4);

    await connect();
    await closed.get(clients[1]!); // b: the oldest unproven socket
    assert.equal(budget.evicted, 1);
    assert.ok(b.destroyed && !a.destroyed && !c.destroyed && !d.destroyed);

    await connect();
    await closed.get(clients[3]!); // d: the next unproven
    assert.ok(d.destroyed && !a.destroyed);

    // Now: a (trusted, idle), c (busy), and two newcomers. Prove the newcomers busy as well.
    budget.requestStarted(accepted[4]!, true);
    budget.requestStarted(accepted[5]!, true);
    await connect();
    await closed.get(clients[0]!); // a: the idle authenticated one goes only when no unproven remains
    assert.ok(a.destroyed && !c.destroyed);

    // Every socket busy answering: the newcomer is refused.
    budget.requestStarted(accepted[6]!, true);
    const refused = net.connect(port, '127.0.0.1');
    refused.on('error', () => {});
    await new Promise<void>((resolve) => refused.once('close', () => resolve()));
    assert.equal(budget.size, 4);
    assert.ok(!c.destroyed);
  } finally {
    for (const client of clients) client.destroy();
    budget.close();
    server.close();
  }
});

test('the request-head deadline closes a socket that trickles; a silent one is kept while there is room', async () => {
  const budget = new ConnectionBudget(16, { head: 300, answer: 300 });
  const server = net.createServer((socket) => {
    budget.admit(socket);
    socket.once('data', () => budget.headStarted(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  const silent = net.connect(port, '127.0.0.1');
  try {
    await new Promise<void>((resolve) => silent.once('connect', () => resolve()));
    const trickling = net.connect(port, '127.0.0.1');
    trickling.once('connect', () => slowloris(trickling));
    for (const socket of [silent, trickling]) socket.on('error', () => {});
    await until(() => trickling.closed, 5_000, 'the trickling socket closed');
    await until(() => budget.size === 1, 5_000, 'the server side of the trickling socket closed');
    assert.equal(budget.expired, 1);
    assert.ok(!silent.destroyed, 'the silent socket is still open');
  } finally {
    silent.destroy();
    budget.close();
    server.close();
  }
});

test('the answer deadline closes a socket whose request is not answered (or not read) in time', async () => {
  const budget = new ConnectionBudget(16, { head: 60_000, answer: 300 });
  const accepted: net.Socket[] = [];
  const server = net.createServer((socket) => {
    if (budget.admit(socket)) accepted.push(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  const client = net.connect(port, '127.0.0.1');
  client.on('error', () => {});
  try {
    await until(() => accepted.length === 1, 5_000, 'the server took the socket in');
    // A busy socket is never evicted; only the deadline frees it.
    budget.requestStarted(accepted[0]!, true);
    await until(() => client.closed, 5_000, 'the unanswered socket closed');
    assert.equal(budget.expired, 1);
    assert.equal(budget.size, 0);
  } finally {
    client.destroy();
    budget.close();
    server.close();
  }
});

test('control.host 0.0.0.0 without a token exits with STEWARD_ERR_CONTROL_UNPROTECTED naming the opt-out', async () => {
  const fixture = spawnFixture('metrics-cluster.js', {
    FIXTURE_OPTIONS: JSON.stringify({ workers: 1, control: { port: 0, host: '0.0.0.0' } }),
  });
  spawned.push(fixture);
  const { code } = await fixture.exited;
  assert.notEqual(code, 0);
  const stderr = fixture.stderr.join('');
  assert.match(stderr, /STEWARD_ERR_CONTROL_UNPROTECTED/);
  assert.match(stderr, /control\.allowUnauthenticated/);
  assert.ok(!fixture.logs.some(event('control:listening')), 'nothing listened');
});

test('with control.allowUnauthenticated the open server starts and says so at warn, with its auth mode', async () => {
  const fixture = spawnFixture('metrics-cluster.js', {
    FIXTURE_OPTIONS: JSON.stringify({
      workers: 1,
      control: { port: 0, host: '0.0.0.0', allowUnauthenticated: true },
    }),
  });
  spawned.push(fixture);
  const listening = await fixture.waitForLog(event('control:listening'), 20_000, 'control:listening');
  assert.equal(listening.level, 40);
  assert.equal(listening.auth, 'none');
  assert.equal(listening.address, '0.0.0.0');
  fixture.killAll();
});

test('the CLI opt-out: --control-allow-unauthenticated lets --control-host 0.0.0.0 through, its absence does not', () => {
  const base = ['test/fixtures/cli-server.js', '--control-port', '0', '--control-host', '0.0.0.0'];
  const open = runOptions([...base, '--control-allow-unauthenticated']);
  assert.notEqual(open, 'help');
  assert.equal(resolveOptions(open as StewardOptions).control?.host, '0.0.0.0');
  assert.throws(
    () => resolveOptions(runOptions(base) as StewardOptions),
    (error: StewardError) =>
      error.code === 'STEWARD_ERR_CONTROL_UNPROTECTED' &&
      error.message.includes('--control-allow-unauthenticated') &&
      error.details?.option === 'control.allowUnauthenticated',
  );
  const withToken = resolveOptions({
    worker: () => {},
    control: { port: 0, host: '10.1.2.3', token: TOKEN },
  });
  assert.equal(withToken.control?.token, TOKEN, 'a token is enough');
});
