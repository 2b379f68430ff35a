import type { IncomingMessage, ServerResponse } from 'node:http';
import { type ClusterStatus, status } from '../common/cluster-status.js';
import { redactDeep } from '../common/redact.js';

/** Options of `pingResult()` and the ping handlers. */
export interface PingOptions {
  /** Where the status comes from. @default `status` (the latest snapshot pushed to this process) */
  getStatus?: () => ClusterStatus;
}

/** The JSON a ping answers with: the status without error stacks (a ping is often public). */
export interface PingBody extends Omit<ClusterStatus, 'services'> {
  services: Array<Omit<ClusterStatus['services'][number], 'lastError'> & { lastError: string | null }>;
}

/** 200 when every non-standby service runs and the snapshot is fresh, 503 otherwise; plus the body. */
export function pingResult(options: PingOptions = {}): { statusCode: 200 | 503; body: PingBody } {
  const current = (options.getStatus ?? status)();
  // A ping is often public: service problems and errors quote connection strings and configuration.
  const body: PingBody = redactDeep({
    ...current,
    services: current.services.map((service) => ({
      ...service,
      lastError: service.lastError
        ? `${service.lastError.name}${service.lastError.code ? ` [${service.lastError.code}]` : ''}: ${service.lastError.message}`
        : null,
    })),
  });
  return { statusCode: current.healthy ? 200 : 503, body };
}

/** A `node:http` request listener (also a valid Express handler): `server.on('request', ...)` or a route. */
export function httpPingHandler(
  options: PingOptions = {},
): (request: IncomingMessage, response: ServerResponse) => void {
  return (request, response) => {
    const { statusCode, body } = pingResult(options);
    const text = JSON.stringify(body);
    response.statusCode = statusCode;
    response.setHeader('content-type', 'application/json; charset=utf-8');
    response.setHeader('cache-control', 'no-store');
    response.setHeader('content-length', Buffer.byteLength(text));
    response.end(request.method === 'HEAD' ? undefined : text);
  };
}

/** Express: `app.get('/ping', expressPingHandler())`. */
export function expressPingHandler(
  options: PingOptions = {},
): (request: IncomingMessage, response: ServerResponse, next?: unknown) => void {
  const handler = httpPingHandler(options);
  return (request, response) => handler(request, response);
}

/** The part of Fastify's reply this handler uses (no type dependency on fastify). */
export interface FastifyReplyLike {
  /** Sets the status code. */
  code(statusCode: number): FastifyReplyLike;
  /** Sets a response header. */
  header(name: string, value: string): FastifyReplyLike;
  /** Sends the payload (serialised as JSON by Fastify). */
  send(payload: unknown): unknown;
}

/** Fastify: `app.get('/ping', fastifyPingHandler())`. */
export function fastifyPingHandler(
  options: PingOptions = {},
): (request: unknown, reply: FastifyReplyLike) => unknown {
  return (_request, reply) => {
    const { statusCode, body } = pingResult(options);
    return reply.code(statusCode).header('cache-control', 'no-store').send(body);
  };
}
