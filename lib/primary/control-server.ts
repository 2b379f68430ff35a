import { createHash, timingSafeEqual } from 'node:crypto';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { redactDeep } from '../common/logger.js';
import type { StatusUpdate } from '../common/messages.js';
import { coerceError, StewardError } from '../errors.js';
import type { ClusterMetrics } from '../metrics/cluster-aggregator.js';
import type { ResolvedOptions } from '../options.js';
import { type DashboardAccess, dashboardRoute } from './dashboard/dashboard-routes.js';
import type { LifecycleLog } from './dashboard/lifecycle-log.js';
import type { PoolView } from './worker-pool.js';

/** What the control server reads from the supervisor. */
export interface ControlTarget {
  readonly options: ResolvedOptions;
  readonly pool: PoolView;
  readonly metrics: ClusterMetrics;
  /** The last lifecycle events, listed by the dashboard. */
  readonly lifecycle: LifecycleLog;
  statusUpdate(): StatusUpdate;
  /** The dashboard's actions: a rolling restart of the workers and a restart of the services host. */
  restartWorkers(reason: string): Promise<void>;
  restartServices(reason: string): Promise<boolean>;
}

export type ControlSettings = NonNullable<ResolvedOptions['control']>;

/** Service states in which the cluster is not healthy: the service will not handle events on its own. */
const UNHEALTHY_SERVICE_STATES = new Set(['stopped', 'failed']);

type Route = (target: ControlTarget, response: ServerResponse) => Promise<void> | void;

const routes: Record<string, Route> = {
  '/metrics': async (target, response) => {
    const text = await target.metrics.scrape();
    send(response, 200, text, target.metrics.contentType);
  },
  '/status': (target, response) => sendJson(response, 200, clusterStatus(target)),
  '/healthz': (target, response) => {
    const problems = healthProblems(target);
    sendJson(response, problems.length === 0 ? 200 : 503, { ok: problems.length === 0, problems });
  },
};

/**
 * The primary's HTTP endpoint for operators and Prometheus: `/metrics`, `/status`, `/healthz`. GET only,
 * no request bodies, short timeouts, and a bearer token (compared in constant time) when configured.
 */
export class ControlServer {
  readonly #target: ControlTarget;
  readonly #logger: Logger;
  readonly #tokenHash: Buffer | undefined;
  readonly #server: http.Server;

  private constructor(target: ControlTarget, settings: ControlSettings, logger: Logger) {
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
    target: ControlTarget,
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
      const challenges = ['Bearer realm="cluster-steward"'];
      // Only the page asks a browser for the token (as the password of a Basic login).
      if (pathOf(request.url) === '/') challenges.push('Basic realm="cluster-steward", charset="UTF-8"');
      response.setHeader('www-authenticate', challenges);
      const code = 'STEWARD_ERR_CONTROL_AUTH';
      sendJson(response, 401, { error: { code, message: 'A valid bearer token is required' } });
      return undefined;
    }
    const path = pathOf(request.url);
    const dashboard = dashboardRoute(request, response, path, this.#dashboardAccess(request));
    if (dashboard !== null) return dashboard;
    const route = Object.hasOwn(routes, path) ? routes[path] : undefined;
    if (!route) sendJson(response, 404, { error: { message: 'Not found' } });
    else if (request.method !== 'GET') {
      response.setHeader('allow', 'GET');
      sendJson(response, 405, { error: { message: 'Only GET is allowed' } });
    } else if (hasBody(request)) sendJson(response, 413, { error: { message: 'Requests take no body' } });
    else return route;
    return undefined;
  }

  /** The bearer token, or the password of a Basic login (what a browser sends for the page). */
  #authorized(request: IncomingMessage): boolean {
    if (this.#tokenHash === undefined) return true;
    const header = request.headers.authorization ?? '';
    const basic = /^Basic +([A-Za-z0-9+/=]+) *$/i.exec(header);
    if (!basic) return this.#bearerMatches(request);
    const credentials = Buffer.from(basic[1]!, 'base64').toString('utf8');
    return this.#tokenMatches(credentials.slice(credentials.indexOf(':') + 1));
  }

  #bearerMatches(request: IncomingMessage): boolean {
    const match = /^Bearer +(\S+) *$/i.exec(request.headers.authorization ?? '');
    return match !== null && this.#tokenMatches(match[1]!);
  }

  #tokenMatches(candidate: string): boolean {
    if (this.#tokenHash === undefined) return false;
    // Hashes have equal lengths, so the comparison time depends on neither the token nor its length.
    return timingSafeEqual(sha256(candidate), this.#tokenHash);
  }

  /**
   * Actions change the cluster, so they need the token itself in the Authorization header: a browser
   * attaches a cached Basic login to any request, even one a foreign page makes, but never a bearer token.
   */
  #dashboardAccess(request: IncomingMessage): DashboardAccess {
    return {
      actionsEnabled: this.#tokenHash !== undefined,
      // Hashed only for an action: a scrape or a page poll pays nothing for it.
      hasBearerToken: () => this.#bearerMatches(request),
      logger: this.#logger,
    };
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

export function hasBody(request: IncomingMessage): boolean {
  const length = request.headers['content-length'];
  return request.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
}

export function send(response: ServerResponse, status: number, body: string, contentType: string): void {
  response.writeHead(status, { 'content-type': contentType, 'content-length': Buffer.byteLength(body) });
  response.end(body);
}

export function sendJson(response: ServerResponse, status: number, value: unknown): void {
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
  if (target.options.worker && !target.pool.handles.some((handle) => handle.state === 'ready'))
    problems.push('no HTTP worker is ready');
  if (target.options.services) {
    const snapshot = target.statusUpdate().services;
    if (snapshot === null) problems.push('the services host has not reported');
    for (const service of snapshot?.services ?? [])
      if (UNHEALTHY_SERVICE_STATES.has(service.state))
        problems.push(`service ${service.name} is ${service.state}`);
      else if (service.problem !== null) problems.push(`service ${service.name}: ${service.problem}`);
  }
  return problems;
}
