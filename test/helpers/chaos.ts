import { once } from 'node:events';
import http from 'node:http';
import net from 'node:net';
import pg from 'pg';
import { enqueue } from '../../lib/pg.js';
import { BROKER, declareQueue, deleteQueues, publish, uniqueQueue } from './amqp.js';
import { adminQuery, dropSchema, pgUrl, randomSuffix } from './pg.js';
import { event, type Spawned, spawnFixture, until } from './process.js';

/**
 * A TCP forwarder to the broker that can cut every connection and refuse new ones for a while: from the
 * listener's side, exactly what a broker restart looks like, without restarting the broker other test
 * files share.
 */
export class ChaosProxy {
  readonly #server: net.Server;
  readonly #sockets = new Set<net.Socket>();
  #refuseUntil = 0;

  constructor(target = BROKER.port) {
    this.#server = net.createServer((client) => {
      if (Date.now() < this.#refuseUntil) {
        client.destroy();
        return;
      }
      const upstream = net.connect(target, BROKER.host);
      for (const socket of [client, upstream]) {
        this.#sockets.add(socket);
        socket.on('close', () => this.#sockets.delete(socket));
        socket.on('error', () => socket.destroy());
      }
      client.pipe(upstream);
      upstream.pipe(client);
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
    });
  }

  async listen(): Promise<number> {
    this.#server.listen(0, '127.0.0.1');
    await once(this.#server, 'listening');
    return (this.#server.address() as net.AddressInfo).port;
  }

  /** Drops every forwarded connection and refuses new ones for `refuseMs`. */
  cut(refuseMs = 0): void {
    this.#refuseUntil = Date.now() + refuseMs;
    for (const socket of this.#sockets) socket.destroy();
  }

  async close(): Promise<void> {
    this.cut();
    await new Promise((resolve) => this.#server.close(resolve));
  }
}

interface HttpFailure {
  startedAt: number;
  failedAt: number;
  /** The worker that last answered on this client's connection (null: a fresh connection). */
  lastPid: number | null;
  code: string;
}

/**
 * Keep-alive HTTP load: `clients` loops, each on its own single-socket agent, so every failure can be
 * traced to the worker that served its connection.
 */
export class HttpLoad {
  readonly failures: HttpFailure[] = [];
  /** Per client: the worker that last answered on its connection. */
  readonly lastPids: Array<number | null> = [];
  ok = 0;
  inFlight = 0;
  #running = true;
  readonly #loops: Promise<void>[];

  constructor(url: string, clients: number) {
    this.#loops = Array.from({ length: clients }, (_, index) => this.#loop(url, index));
  }

  /**
   * Clients whose request in flight may be on `pid`'s connection: those it served last, and those on a
   * fresh connection not yet answered (the primary may have handed it to any worker). The most a kill of
   * `pid` can fail at once.
   */
  clientsOn(pid: number): number {
    return this.lastPids.filter((lastPid) => lastPid === pid || lastPid === null).length;
  }

  async #loop(url: string, index: number): Promise<void> {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    let lastPid: number | null = null;
    this.lastPids[index] = null;
    while (this.#running) {
      const startedAt = Date.now();
      this.inFlight++;
      try {
        const body = await getText(url, agent);
        lastPid = (JSON.parse(body) as { pid: number }).pid;
        this.lastPids[index] = lastPid;
        this.ok++;
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code ?? String(error);
        this.failures.push({ startedAt, failedAt: Date.now(), lastPid, code });
        lastPid = null;
        this.lastPids[index] = null;
      } finally {
        this.inFlight--;
      }
    }
    agent.destroy();
  }

  async stop(): Promise<void> {
    this.#running = false;
    await Promise.all(this.#loops);
  }
}

export function getText(url: string, agent: http.Agent): Promise<string> {
  return new Promise((resolve, reject) => {
    const request = http.get(url, { agent }, (response) => {
      let body = '';
      response.setEncoding('utf8').on('data', (chunk: string) => {
        body += chunk;
      });
      response.on('end', () =>
        response.statusCode === 200 ? resolve(body) : reject(new Error(`status ${response.statusCode}`)),
      );
      response.on('error', reject);
    });
    request.on('error', reject);
    request.setTimeout(10_000, () => request.destroy(new Error('timeout')));
  });
}

export type Source = 'amqp' | 'pg';

/** Produces `total` events to both sources over `durationMs`, retrying failed batches (a retry may duplicate). */
export class Producers {
  sent: Record<Source, number> = { amqp: 0, pg: 0 };
  retries = 0;
  readonly done: Promise<void>;
  readonly #pool: pg.Pool;
  #pause = 0;

  constructor(
    readonly env: ChaosEnv,
    readonly total: number,
    durationMs: number,
    batch = 100,
  ) {
    // Its own application_name: terminating the app's backends never hits the producer.
    this.#pool = new pg.Pool({ connectionString: pgUrl(`${env.pgApp}-producer`), max: 2 });
    this.#pool.on('error', () => {});
    this.#pause = Math.max(5, Math.floor(durationMs / Math.ceil(total / batch)));
    this.done = Promise.all([this.#run('amqp', batch), this.#run('pg', batch)]).then(() => this.#pool.end());
  }

  /** Sends the rest without pausing (the faults are over). */
  hurry(): void {
    this.#pause = 0;
  }

  async #run(source: Source, batch: number): Promise<void> {
    for (let first = 0; first < this.total; first += batch) {
      const ids = Array.from({ length: Math.min(batch, this.total - first) }, (_, i) => first + i);
      for (;;) {
        try {
          await this.#send(source, ids);
          break;
        } catch {
          this.retries++;
          await sleep(200);
        }
      }
      this.sent[source] += ids.length;
      if (this.#pause > 0) await sleep(this.#pause);
    }
  }

  async #send(source: Source, ids: number[]): Promise<void> {
    if (source === 'amqp') {
      await publish(
        this.env.queue,
        ids.map((id) => ({ message_id: `a-${id}`, body: String(id) })),
      );
      return;
    }
    const events = ids.map((id) => ({ type: 'chaos', payload: { id: `p-${id}` } }));
    await enqueue(this.#pool, events, { schema: this.env.schema });
  }
}

export interface ChaosEnv {
  schema: string;
  queue: string;
  pgApp: string;
  proxy: ChaosProxy;
  app: Spawned;
  control: string;
  url: string;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Creates the schema, results table, queue and proxy, starts the fixture and waits until all of it runs. */
export async function startChaosApp(port: number, logLevel = 'info'): Promise<ChaosEnv> {
  const suffix = randomSuffix();
  const schema = `steward_chaos_${suffix}`;
  const queue = uniqueQueue('chaos');
  const pgApp = `steward-chaos-${suffix}`;
  await adminQuery(`CREATE SCHEMA "${schema}"`);
  await adminQuery(
    `CREATE TABLE "${schema}".results (
       source text NOT NULL, id text NOT NULL, handled integer NOT NULL DEFAULT 1,
       first_at timestamptz NOT NULL DEFAULT clock_timestamp(),
       last_at timestamptz NOT NULL DEFAULT clock_timestamp(), PRIMARY KEY (source, id))`,
  );
  await declareQueue(queue);
  const proxy = new ChaosProxy();
  const proxyPort = await proxy.listen();
  const app = spawnFixture('chaos-app.js', {
    STEWARD_LOG_LEVEL: logLevel,
    PORT: String(port),
    CHAOS_SCHEMA: schema,
    CHAOS_QUEUE: queue,
    CHAOS_AMQP_PORT: String(proxyPort),
    CHAOS_PG_URL: pgUrl(pgApp),
  });
  const listening = await app.waitForLog(event('control:listening'), 20_000, 'control:listening');
  const env: ChaosEnv = {
    schema,
    queue,
    pgApp,
    proxy,
    app,
    control: `http://127.0.0.1:${listening.port as number}`,
    url: `http://127.0.0.1:${port}/`,
  };
  await until(async () => healthy(await clusterStatus(env)), 30_000, 'workers ready and services running');
  return env;
}

export async function cleanupChaos(env: ChaosEnv | undefined): Promise<void> {
  if (!env) return;
  env.app.killAll();
  await env.proxy.close();
  await deleteQueues(env.queue);
  await dropSchema(env.schema);
}

export interface ClusterStatus {
  workers: Array<{ pid: number; state: string }>;
  services: {
    pid: number;
    at: number;
    services: Array<{ name: string; state: string; connected: boolean | null }>;
  } | null;
}

export async function clusterStatus(env: ChaosEnv): Promise<ClusterStatus> {
  return JSON.parse(await getText(`${env.control}/status`, new http.Agent())) as ClusterStatus;
}

/** Two ready workers, and every service running and connected. */
export function healthy(status: ClusterStatus): boolean {
  const services = status.services?.services ?? [];
  return (
    status.workers.filter((worker) => worker.state === 'ready').length === 2 &&
    services.length === 2 &&
    services.every((service) => service.state === 'running' && service.connected !== false)
  );
}

/** Events of `source` recorded (first or again) after `since` (epoch ms). */
export async function recordedSince(env: ChaosEnv, source: Source, since: number): Promise<number> {
  const rows = await adminQuery<{ n: number }>(
    `SELECT count(*)::int AS n FROM "${env.schema}".results WHERE source = $1 AND last_at > to_timestamp($2)`,
    [source, since / 1000],
  );
  return rows[0]!.n;
}
