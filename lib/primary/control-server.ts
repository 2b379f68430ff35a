import { createHash, timingSafeEqual } from 'node:crypto';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { redactDeep } from '../common/logger.js';
import type { StatusUpdate } from '../common/messages.js';
import { coerceError, StewardError } from '../errors.js';
import type { ClusterMetrics } from '../metrics/cluster-aggregator.js';
import type { ResolvedOptions } from '../options.js';
import type { ServicesSnapshot } from '../services/types.js';
import type { PoolView } from './worker-pool.js';

/** What the control server reads from the supervisor. */
export interface ControlTarget {
  readonly options: ResolvedOptions;
  readonly pool: PoolView;
  readonly metrics: ClusterMetrics;
  statusUpdate(): StatusUpdate;
  /** Problems of the primary process itself (a blocked event loop), if it watches for any. */
  ownProblems?(): string[];
}

export type ControlSettings = NonNullable<ResolvedOptions['control']>;

/**
 * What a control server answers with: the cluster primary's view, or a standalone services host's
 * (`runServices({ control })`); the HTTP side is the same for both.
 */
export interface ControlEndpoints {
  /** The Prometheus text of `/metrics`. */
  scrapeMetrics(): Promise<string>;
  readonly metricsContentType: string;
  /** The JSON of `/status`; secrets already redacted. */
  status(): Record<string, unknown>;
  /** Why `/healthz` answers 503, or nothing. */
  healthProblems(): string[];
}

/** The cluster primary's endpoints. */
export function clusterEndpoints(target: ControlTarget): ControlEndpoints {
  return {
    scrapeMetrics: () => target.metrics.scrape(),
    get metricsContentType() {
      return target.metrics.contentType;
    },
    status: () => clusterStatus(target),
    healthProblems: () => healthProblems(target),
  };
}

/** Service states in which the cluster is not healthy: the service will not handle events on its own. */
const UNHEALTHY_SERVICE_STATES = new Set(['stopped', 'failed']);

type Route = (endpoints: ControlEndpoints, response: ServerResponse) => Promise<void> | void;

const routes: Record<string, Route> = {
  '/metrics': async (endpoints, response) => {
    const text = await endpoints.scrapeMetrics();
    send(response, 200, text, endpoints.metricsContentType);
  },
  '/status': (endpoints, response) => sendJson(response, 200, endpoints.status()),
  '/healthz': (endpoints, response) => {
    const problems = endpoints.healthProblems();
    sendJson(response, problems.length === 0 ? 200 : 503, { ok: problems.length === 0, problems });
  },
};

/**
 * The HTTP endpoint for operators, probes and Prometheus: `/metrics`, `/status`, `/healthz`. GET only,
 * no request bodies, short timeouts, and a bearer token (compared in constant time) when configured.
 */
export class ControlServer {
  readonly #target: ControlEndpoints;
  readonly #logger: Logger;
  readonly #tokenHash: Buffer | undefined;
  readonly #server: http.Server;

  private constructor(target: ControlEndpoints, settings: ControlSettings, logger: Logger) {
    this.#target = target;
    this.#logger = logger.child({ component: 'control' });
    this.#tokenHash = settings.token === undefined ? undefined : sha256(settings.token);
    this.#server = http.createServer(
      { maxHeaderSize: 16 * 1024, headersTimeout: 5_000, requestTimeout: 10_000, keepAliveTimeout: 5_000 },
      this.#onRequest,
    );
    // A scrape waits at most the collect timeout; an idle or trickling client is cut well after that.
    this.#server.setTimeout(settings.metricsTimeout + 30_000);
    this.#server.maxConnections = 128;
  }

  /** Listens on `settings.host:settings.port` and logs `control:listening` with the bound address. */
  static async start(
    target: ControlEndpoints,
    settings: ControlSettings,
    logger: Logger,
  ): Promise<ControlServer> {
    const control = new ControlServer(target, settings, logger);
    await new Promise<void>((resolve, reject) => {
      const onError = (error: Error) => {
        reject(
          new StewardError(
            'STEWARD_ERR_CONTROL_LISTEN',
            `The control server could not listen on ${settings.host}:${settings.port}: ${error.message}`,
            { cause: error, details: { host: settings.host, port: settings.port } },
          ),
        );
      };
      control.#server.once('error', onError);
      control.#server.listen(settings.port, settings.host, () => {
        control.#server.off('error', onError);
        resolve();
      });
    });
    const { address, port } = control.address();
    control.#logger.info({ address, port, auth: settings.token !== undefined }, 'control:listening');
    return control;
  }

  address(): AddressInfo {
    return this.#server.address() as AddressInfo;
  }

  /** Stops accepting and closes every connection (the process is about to exit). */
  close(): Promise<void> {
    return new Promise((resolve) => {
      this.#server.close(() => resolve());
      this.#server.closeAllConnections();
    });
  }

  #onRequest = (request: IncomingMessage, response: ServerResponse): void => {
    response.setHeader('cache-control', 'no-store');
    const route = this.#route(request, response);
    if (!route) return;
    Promise.resolve()
      .then(() => route(this.#target, response))
      .catch((error: unknown) => {
        this.#logger.error({ err: coerceError(error), path: request.url }, 'control:request:failed');
        if (!response.headersSent) sendJson(response, 500, { error: { message: 'Internal error' } });
        else response.destroy();
      });
  };

  /** The route to run, or undefined once the request was refused (401, 404, 405, 413). */
  #route(request: IncomingMessage, response: ServerResponse): Route | undefined {
    // Authentication first: without the token, not even which paths exist is revealed.
    if (!this.#authorized(request)) {
      this.#logger.debug({ path: request.url, remote: request.socket.remoteAddress }, 'control:unauthorized');
      response.setHeader('www-authenticate', 'Bearer realm="cluster-steward"');
      const code = 'STEWARD_ERR_CONTROL_AUTH';
      sendJson(response, 401, { error: { code, message: 'A valid bearer token is required' } });
      return undefined;
    }
    const path = pathOf(request.url);
    const route = Object.hasOwn(routes, path) ? routes[path] : undefined;
    if (!route) sendJson(response, 404, { error: { message: 'Not found' } });
    else if (request.method !== 'GET') {
      response.setHeader('allow', 'GET');
      sendJson(response, 405, { error: { message: 'Only GET is allowed' } });
    } else if (hasBody(request)) sendJson(response, 413, { error: { message: 'Requests take no body' } });
    else return route;
    return undefined;
  }

  #authorized(request: IncomingMessage): boolean {
    if (this.#tokenHash === undefined) return true;
    const match = /^Bearer +(\S+) *$/i.exec(request.headers.authorization ?? '');
    if (!match) return false;
    // Hashes have equal lengths, so the comparison time depends on neither the token nor its length.
    return timingSafeEqual(sha256(match[1]!), this.#tokenHash);
  }
}

function sha256(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}

function pathOf(url: string | undefined): string {
  const raw = url ?? '/';
  const query = raw.indexOf('?');
  return query === -1 ? raw : raw.slice(0, query);
}

function hasBody(request: IncomingMessage): boolean {
  const length = request.headers['content-length'];
  return request.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
}

function send(response: ServerResponse, status: number, body: string, contentType: string): void {
  response.writeHead(status, { 'content-type': contentType, 'content-length': Buffer.byteLength(body) });
  response.end(body);
}

function sendJson(response: ServerResponse, status: number, value: unknown): void {
  send(response, status, `${JSON.stringify(value)}\n`, 'application/json; charset=utf-8');
}

/** `/status`: the primary, every worker, and the services as their host last reported them. */
export function clusterStatus(target: ControlTarget): Record<string, unknown> {
  const workers = target.pool.handles.map((handle) => ({
    id: handle.id,
    pid: handle.pid,
    state: handle.state,
    age: handle.age,
    requests: handle.requests,
    inFlight: handle.inFlight,
    rss: handle.rss,
    heapUsed: handle.heapUsed,
    lastHeartbeatAt: handle.lastHeartbeatAt,
    retireReason: handle.retireReason,
  }));
  return {
    pid: process.pid,
    at: Date.now(),
    uptime: Math.round(process.uptime() * 1000),
    stopping: target.pool.stopping,
    workers,
    // Service errors can quote connection strings: passwords never leave through /status.
    services: redactDeep(target.statusUpdate().services),
  };
}

/** `/healthz`: why the cluster is not healthy, or nothing. */
export function healthProblems(target: ControlTarget): string[] {
  const problems: string[] = [];
  if (target.pool.stopping) problems.push('shutting down');
  problems.push(...(target.ownProblems?.() ?? []));
  if (target.options.worker && !target.pool.handles.some((handle) => handle.state === 'ready'))
    problems.push('no HTTP worker is ready');
  if (target.options.services) {
    const snapshot = target.statusUpdate().services;
    if (snapshot === null) problems.push('the services host has not reported');
    else {
      if (snapshot.stale)
        problems.push(
          `the services ${snapshot.role} (pid ${snapshot.pid}) sent no status for ${(snapshot.stale.silentMs / 1000).toFixed(1)} s`,
        );
      problems.push(...serviceProblems(snapshot));
    }
  }
  return problems;
}

/** The services that will not handle events on their own, or report why they cannot right now. */
export function serviceProblems(snapshot: ServicesSnapshot): string[] {
  const problems: string[] = [];
  for (const service of snapshot.services)
    if (UNHEALTHY_SERVICE_STATES.has(service.state))
      problems.push(`service ${service.name} is ${service.state}`);
    else if (service.problem !== null) problems.push(`service ${service.name}: ${service.problem}`);
  return problems;
}
