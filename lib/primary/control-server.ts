import { createHash, timingSafeEqual } from 'node:crypto';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import net, { type AddressInfo, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { isLoopbackHost } from '../common/loopback.js';
import { redactDeep, redactText, registerSecret } from '../common/redact.js';
import type { HostStatusDocument } from '../common/status-document.js';
import { coerceError, StewardError } from '../errors.js';
import type { ResolvedOptions } from '../options.js';
import type { ServicesSnapshot } from '../services/types.js';
import { ConnectionBudget, defaultConnectionBudget } from './connection-budget.js';
import { type ControlTarget, clusterStatus } from './control-target.js';
import { type DashboardAccess, dashboardRoute } from './dashboard/dashboard-routes.js';
import { hasBody, send, sendJson } from './http-reply.js';
import { holdsRequestHeadEnd } from './request-head.js';

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
  status(): HostStatusDocument;
  /** Why `/healthz` answers 503, or nothing. */
  healthProblems(): string[];
  /** The cluster behind the endpoints, for the dashboard; a standalone services host has none. */
  readonly cluster?: ControlTarget;
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
    cluster: target,
  };
}

/** Service states in which the cluster is not healthy: the service will not handle events on its own. */
const UNHEALTHY_SERVICE_STATES = new Set(['stopped', 'failed']);

/**
 * Time a client has to complete a request head, from its first byte or from its previous response (a
 * socket that has sent nothing is kept while the budget has room: see `ConnectionBudget`). A scraper or
 * probe sends its request at once; Node's defaults (`headersTimeout` 60 s, checked only every
 * `connectionsCheckingInterval` of 30 s) let slowloris clients hold sockets ~20 times longer, and
 * fastify's `connectionTimeout` defaults to none. 5 s also matches `keepAliveTimeout`.
 */
const REQUEST_HEAD_DEADLINE = 5_000;
/** Requests served on one connection before it is closed: a client cannot pin a socket for ever. */
const MAX_REQUESTS_PER_SOCKET = 100;
/** Largest request head: the longest legitimate one is a path and a bearer token. */
const MAX_HEADER_BYTES = 8 * 1024;
/** How much longer than `metricsTimeout` a scrape may take before the client gets a 503. */
const SCRAPE_GRACE = 1_000;

/** What a route gets: the supervisor's view and the shared, time-bounded scrape. */
interface RouteContext {
  readonly endpoints: ControlEndpoints;
  readonly response: ServerResponse;
  scrape(): Promise<string>;
}

type Route = (context: RouteContext) => Promise<void> | void;

/**
 * The routes, keyed `METHOD /path`. Every answer leaves through the one redaction: service errors and
 * problems quote connection strings, and metric labels can carry whatever a handler put there.
 */
const routes: Record<string, Route> = {
  'GET /metrics': async ({ endpoints, response, scrape }) => {
    const text = await scrape();
    send(response, 200, redactText(text), endpoints.metricsContentType);
  },
  'GET /status': ({ endpoints, response }) => sendJson(response, 200, redactDeep(endpoints.status())),
  'GET /healthz': ({ endpoints, response }) => {
    const problems = redactDeep(endpoints.healthProblems());
    sendJson(response, problems.length === 0 ? 200 : 503, { ok: problems.length === 0, problems });
  },
};

/** Thrown when the scrape outlives `metricsTimeout` plus the grace: answered with 503. */
class ScrapeTimeout extends Error {}

/**
 * The HTTP endpoint for operators, probes and Prometheus: `/metrics`, `/status`, `/healthz`. GET only,
 * no request bodies, a bearer token (compared in constant time) when configured, and held up against
 * hostile clients: a connection budget that evicts unproven sockets first, bare sockets until a complete
 * request head has arrived, a short deadline for the head, size limits, and a scrape bounded in time and
 * shared by concurrent requests.
 */
export class ControlServer {
  readonly #target: ControlEndpoints;
  readonly #settings: ControlSettings;
  readonly #logger: Logger;
  readonly #tokenHash: Buffer | undefined;
  /** Accepts the connections; a socket goes to `#http` only once it has sent a complete request head. */
  readonly #listener: net.Server;
  /** Parses and answers requests; it never listens itself. */
  readonly #http: http.Server;
  readonly #budget: ConnectionBudget;
  /** Reads a request head on a bare socket; shared by every socket (`this` is the socket). */
  readonly #onHeadBytes: (this: Socket, chunk: Buffer) => void;
  /** The bytes of request heads still arriving, on sockets not handed to `#http` yet. */
  readonly #partialHeads = new WeakMap<Socket, Buffer>();
  #scrapeInFlight: Promise<string> | undefined;

  private constructor(target: ControlEndpoints, settings: ControlSettings, logger: Logger) {
    this.#target = target;
    this.#settings = settings;
    this.#logger = logger.child({ component: 'control' });
    registerSecret(settings.token);
    this.#tokenHash = settings.token === undefined ? undefined : sha256(settings.token);
    // The budget enforces the deadlines: Node checks `headersTimeout` and `requestTimeout` only for a
    // server that listens itself, and `#http` does not.
    this.#budget = new ConnectionBudget(defaultConnectionBudget(), {
      head: REQUEST_HEAD_DEADLINE,
      // A request has no body: once its head is in, only the answer takes time.
      answer: settings.metricsTimeout + SCRAPE_GRACE + REQUEST_HEAD_DEADLINE,
    });
    this.#http = http.createServer(
      { maxHeaderSize: MAX_HEADER_BYTES, keepAliveTimeout: REQUEST_HEAD_DEADLINE },
      this.#onRequest,
    );
    this.#http.maxRequestsPerSocket = MAX_REQUESTS_PER_SOCKET;
    this.#http.on('clientError', answerClientError);
    const control = this;
    this.#onHeadBytes = function (this: Socket, chunk: Buffer) {
      control.#headBytes(this, chunk);
    };
    this.#listener = net.createServer(this.#onConnection);
  }

  /**
   * A new connection: admitted into the budget (evicting an unproven socket when full) and kept as a
   * bare socket, without an HTTP parser, request object or timer, until it has sent a complete request
   * head. A flood of silent or trickling connections then costs the primary little more than the
   * sockets themselves, and little of it survives V8's minor collections (which would otherwise grow
   * the young generation: it doubles whenever that many bytes have survived since it last grew).
   */
  #onConnection = (socket: Socket): void => {
    if (!this.#budget.admit(socket)) {
      this.#logger.warn({ open: this.#budget.size }, 'control:connection:refused');
      return;
    }
    // A reset from a client that never sent a request: the socket closes, nothing to report.
    socket.on('error', ignoreSocketError);
    socket.on('data', this.#onHeadBytes);
  };

  /**
   * Bytes of a request head: kept until the head is complete (or too long, for the parser to refuse
   * with 431), then the HTTP server takes the socket and reads them first. The head deadline starts
   * with the first byte.
   */
  #headBytes(socket: Socket, chunk: Buffer): void {
    const earlier = this.#partialHeads.get(socket);
    if (earlier === undefined) this.#budget.headStarted(socket);
    const head = earlier === undefined ? chunk : Buffer.concat([earlier, chunk]);
    if (!holdsRequestHeadEnd(head, earlier?.length) && head.length <= MAX_HEADER_BYTES) {
      this.#partialHeads.set(socket, head);
      return;
    }
    this.#partialHeads.delete(socket);
    socket.removeListener('data', this.#onHeadBytes);
    socket.pause();
    socket.unshift(head);
    this.#http.emit('connection', socket);
    socket.resume();
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
      control.#listener.once('error', onError);
      control.#listener.listen(settings.port, settings.host, () => {
        control.#listener.off('error', onError);
        resolve();
      });
    });
    const { address, port } = control.address();
    const auth = settings.token === undefined ? 'none' : 'bearer';
    // Reachable from other hosts without a token: only with `allowUnauthenticated`, and said loudly.
    const open = auth === 'none' && !isLoopbackHost(settings.host);
    control.#logger[open ? 'warn' : 'info']({ address, port, auth }, 'control:listening');
    return control;
  }

  address(): AddressInfo {
    return this.#listener.address() as AddressInfo;
  }

  /** Sockets open now, sockets evicted so far to make room, and sockets closed on a deadline. */
  connections(): { open: number; evicted: number; expired: number } {
    return { open: this.#budget.size, evicted: this.#budget.evicted, expired: this.#budget.expired };
  }

  /** Stops accepting and closes every connection (the process is about to exit). */
  close(): Promise<void> {
    return new Promise((resolve) => {
      this.#listener.close(() => resolve());
      this.#budget.close();
    });
  }

  #onRequest = (request: IncomingMessage, response: ServerResponse): void => {
    const authorized = this.#authorized(request);
    const socket = request.socket;
    this.#budget.requestStarted(socket, authorized);
    response.once('close', () => this.#budget.requestFinished(socket));
    response.setHeader('cache-control', 'no-store');
    const route = this.#route(request, response, authorized);
    if (!route) return;
    const context: RouteContext = { endpoints: this.#target, response, scrape: () => this.#scrape() };
    Promise.resolve()
      .then(() => route(context))
      .catch((error: unknown) => {
        if (error instanceof ScrapeTimeout) {
          if (!response.headersSent)
            sendJson(response, 503, { error: { message: 'The scrape did not finish in time' } });
          return;
        }
        this.#logger.error({ err: coerceError(error), path: request.url }, 'control:request:failed');
        if (!response.headersSent) sendJson(response, 500, { error: { message: 'Internal error' } });
        else response.destroy();
      });
  };

  /**
   * One scrape at a time, shared by every request that arrives while it runs (a burst of scrapers
   * costs one collection), and abandoned by the requests after `metricsTimeout` plus a second:
   * the aggregator already leaves out processes that do not answer, so this only trips when the
   * primary itself is stuck, and the client gets a prompt 503 instead of a hanging socket.
   */
  #scrape(): Promise<string> {
    this.#scrapeInFlight ??= this.#target.scrapeMetrics().finally(() => {
      this.#scrapeInFlight = undefined;
    });
    const limit = this.#settings.metricsTimeout + SCRAPE_GRACE;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => {
        this.#logger.warn({ ms: limit }, 'control:scrape:timeout');
        reject(new ScrapeTimeout());
      }, limit);
    });
    return Promise.race([this.#scrapeInFlight, timeout]).finally(() => clearTimeout(timer));
  }

  /** The route to run, or undefined once the request was refused (401, 404, 405, 413). */
  #route(request: IncomingMessage, response: ServerResponse, authorized: boolean): Route | undefined {
    // Authentication first: without the token, not even which paths exist is revealed.
    if (!authorized) {
      this.#logger.debug({ path: request.url, remote: request.socket.remoteAddress }, 'control:unauthorized');
      const challenges = ['Bearer realm="cluster-steward"'];
      // Only the page asks a browser for the token (as the password of a Basic login).
      if (this.#target.cluster && pathOf(request.url) === '/')
        challenges.push('Basic realm="cluster-steward", charset="UTF-8"');
      response.setHeader('www-authenticate', challenges);
      const code = 'STEWARD_ERR_CONTROL_AUTH';
      sendJson(response, 401, { error: { code, message: 'A valid bearer token is required' } });
      return undefined;
    }
    const path = pathOf(request.url);
    const cluster = this.#target.cluster;
    if (cluster) {
      const dashboard = dashboardRoute(request, response, path, this.#dashboardAccess(request));
      if (dashboard === undefined) return undefined;
      if (dashboard !== null) return ({ response: reply }) => dashboard(cluster, reply);
    }
    const key = `${request.method} ${path}`;
    const route = Object.hasOwn(routes, key) ? routes[key] : undefined;
    const allowed = Object.keys(routes)
      .filter((candidate) => candidate.endsWith(` ${path}`))
      .map((candidate) => candidate.slice(0, candidate.indexOf(' ')));
    if (hasBody(request)) {
      // The body is never read: close the connection rather than let the client keep sending it.
      response.setHeader('connection', 'close');
      sendJson(response, 413, { error: { message: 'Requests take no body' } });
    } else if (route) return route;
    else if (allowed.length === 0) sendJson(response, 404, { error: { message: 'Not found' } });
    else {
      response.setHeader('allow', allowed.join(', '));
      sendJson(response, 405, { error: { message: `Only ${allowed.join(', ')} is allowed` } });
    }
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

function ignoreSocketError(): void {}

/**
 * A request the parser refused (an oversized or malformed head): answered, then the connection ended.
 * Node's default answers and destroys the socket at once, so a client still writing its oversized head
 * gets a reset instead of the answer; an end lets it read the answer, and the budget's deadline closes
 * the socket if the client does not.
 */
function answerClientError(error: NodeJS.ErrnoException, socket: Duplex): void {
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  const status =
    error.code === 'HPE_HEADER_OVERFLOW'
      ? '431 Request Header Fields Too Large'
      : error.code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? '408 Request Timeout'
        : '400 Bad Request';
  socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\n\r\n`);
}

function sha256(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}

function pathOf(url: string | undefined): string {
  const raw = url ?? '/';
  const query = raw.indexOf('?');
  return query === -1 ? raw : raw.slice(0, query);
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
