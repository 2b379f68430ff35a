import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { redactDeep } from '../../common/redact.js';
import { coerceError } from '../../errors.js';
import { type ControlTarget, clusterStatus } from '../control-target.js';
import { hasBody, send, sendJson } from '../http-reply.js';
import { dashboardPage } from './page.js';

/** What the control server knows of a request that the dashboard's routes need. */
export interface DashboardAccess {
  /** A token is configured: only then are actions accepted. */
  actionsEnabled: boolean;
  /** Whether the request carries the token as a bearer token (not a Basic login a browser replays). */
  hasBearerToken(): boolean;
  logger: Logger;
}

type DashboardRoute = (target: ControlTarget, response: ServerResponse) => Promise<void> | void;

/** The actions, by path: each answers 202 at once and runs in the background (a recycle takes a while). */
const actions: Record<string, (target: ControlTarget) => Promise<unknown>> = {
  '/actions/recycle-workers': (target) => target.restartWorkers('dashboard'),
  '/actions/restart-services': (target) => target.restartServices('dashboard'),
};

/** Bodies a cross-site HTML form can send without a preflight; an action never takes one. */
const FORM_CONTENT_TYPES = /^\s*(application\/x-www-form-urlencoded|multipart\/form-data|text\/plain)\b/i;

/**
 * The dashboard's routes: `GET /` (the page), `GET /dashboard.json?after=<seq>` (the data it polls) and
 * `POST /actions/*`. Returns null for other paths, undefined once the request was refused, or the route
 * to run. Nothing is computed until a request comes: a cluster nobody watches pays nothing.
 */
export function dashboardRoute(
  request: IncomingMessage,
  response: ServerResponse,
  path: string,
  access: DashboardAccess,
): DashboardRoute | undefined | null {
  if (path === '/' || path === '/dashboard.json') {
    if (!allowMethod(request, response, 'GET') || refuseBody(request, response)) return undefined;
    return path === '/'
      ? (_target, reply) => sendPage(reply)
      : (target, reply) => sendJson(reply, 200, redactDeep(dashboardData(target, request.url, access)));
  }
  const action = Object.hasOwn(actions, path) ? actions[path] : undefined;
  if (!action) return null;
  if (!allowMethod(request, response, 'POST') || refuseBody(request, response)) return undefined;
  const refusal = actionRefusal(request, access);
  if (refusal !== null) {
    access.logger.warn({ path, remote: request.socket.remoteAddress, refusal }, 'control:action:refused');
    const code = 'STEWARD_ERR_CONTROL_ACTION_REFUSED';
    sendJson(response, refusal.status, { error: { code, message: refusal.message } });
    return undefined;
  }
  return (target, reply) => {
    const name = path.slice('/actions/'.length);
    access.logger.info({ action: name, remote: request.socket.remoteAddress }, 'control:action');
    action(target).catch((error: unknown) => {
      access.logger.error({ err: coerceError(error), action: name }, 'control:action:failed');
    });
    sendJson(reply, 202, { accepted: true, action: name });
  };
}

function allowMethod(request: IncomingMessage, response: ServerResponse, method: string): boolean {
  if (request.method === method || (method === 'GET' && request.method === 'HEAD')) return true;
  response.setHeader('allow', method);
  sendJson(response, 405, { error: { message: `Only ${method} is allowed` } });
  return false;
}

function refuseBody(request: IncomingMessage, response: ServerResponse): boolean {
  if (!hasBody(request)) return false;
  sendJson(response, 413, { error: { message: 'Requests take no body' } });
  return true;
}

/**
 * Why an action request is refused, or null. The bearer token alone defeats cross-site requests (a
 * foreign page cannot set Authorization without a CORS preflight, which this server never grants);
 * the origin and form checks refuse what only a cross-site or form request would send.
 */
function actionRefusal(
  request: IncomingMessage,
  access: DashboardAccess,
): { status: number; message: string } | null {
  if (!access.actionsEnabled)
    return { status: 403, message: 'Actions are disabled: configure `control.token` to enable them' };
  if (!access.hasBearerToken())
    return { status: 401, message: 'Actions need the token as a bearer token in the Authorization header' };
  const site = request.headers['sec-fetch-site'];
  if (site !== undefined && site !== 'same-origin' && site !== 'none')
    return { status: 403, message: `Cross-site action requests are refused (Sec-Fetch-Site: ${site})` };
  const origin = request.headers.origin;
  if (origin !== undefined && origin !== `http://${request.headers.host}`)
    return { status: 403, message: 'Action requests from another origin are refused' };
  if (FORM_CONTENT_TYPES.test(request.headers['content-type'] ?? ''))
    return { status: 415, message: 'Action requests are not form submissions' };
  return null;
}

function sendPage(response: ServerResponse): void {
  // The page runs only its own inline script and style; nothing else may load, run or frame it.
  const nonce = randomBytes(16).toString('base64');
  response.setHeader(
    'content-security-policy',
    `default-src 'none'; script-src 'nonce-${nonce}'; style-src 'nonce-${nonce}'; connect-src 'self'; ` +
      "form-action 'none'; frame-ancestors 'none'; base-uri 'none'",
  );
  response.setHeader('x-content-type-options', 'nosniff');
  response.setHeader('referrer-policy', 'no-referrer');
  send(response, 200, dashboardPage(nonce), 'text/html; charset=utf-8');
}

/** What the page polls: the cluster status and the lifecycle events after the last one it saw. */
export function dashboardData(
  target: ControlTarget,
  url: string | undefined,
  access: DashboardAccess,
): Record<string, unknown> {
  const after = Number(new URL(url ?? '/', 'http://localhost').searchParams.get('after') ?? 0);
  const seq = Number.isSafeInteger(after) && after > 0 ? after : 0;
  return {
    status: clusterStatus(target),
    actionsEnabled: access.actionsEnabled,
    lastSeq: target.lifecycle.lastSeq,
    capacity: target.lifecycle.capacity,
    events: target.lifecycle.after(seq),
  };
}
