// The demo's HTTP application, loaded only in the workers. `/` is a small page for people, `/ping` the
// same facts as JSON. Both say which worker answered, how old it is and how many requests it served,
// list the cluster's workers (from the control server's /status), and show the daemon's counters from
// `status()`: the services status the primary pushes to every worker.
import http from 'node:http';
import { pingResult } from 'cluster-steward';
import { renderPage } from './page.js';

/** How long a worker reuses the control server's answers, so a burst of requests is not a burst of scrapes. */
const CLUSTER_STATUS_TTL_MS = 1_000;

export function startServer({ port, host, controlPort, ctx }) {
  const bornAt = Date.now();
  let served = 0;
  const clusterStatus = cachedClusterStatus(controlPort, ctx.logger);

  async function facts() {
    const { statusCode, body } = pingResult();
    return {
      statusCode,
      body: {
        worker: { id: ctx.id, pid: process.pid, ageMs: Date.now() - bornAt, requests: served },
        cluster: await clusterStatus(),
        ...body,
      },
    };
  }

  const server = http.createServer(async (request, response) => {
    served++;
    const path = new URL(request.url ?? '/', 'http://demo').pathname;
    try {
      if (path === '/ping') {
        const { statusCode, body } = await facts();
        return send(response, statusCode, 'application/json; charset=utf-8', JSON.stringify(body));
      }
      if (path === '/') {
        const { body } = await facts();
        return send(response, 200, 'text/html; charset=utf-8', renderPage(body));
      }
      send(response, 404, 'application/json; charset=utf-8', '{"error":"not found"}');
    } catch (error) {
      ctx.logger.error({ err: error, path }, 'demo:request:failed');
      if (!response.headersSent)
        send(response, 500, 'application/json; charset=utf-8', '{"error":"internal"}');
    }
  });
  server.listen(port, host, () => ctx.logger.info({ port, host }, 'demo:worker:listening'));
  return server;
}

function send(response, statusCode, contentType, body) {
  response.writeHead(statusCode, { 'content-type': contentType, 'cache-control': 'no-store' });
  response.end(body);
}

/**
 * The workers as the primary sees them (id, pid, state, age, requests) from the control server's `/status`,
 * and the recycles so far by reason from its `/metrics`, cached briefly. `null` when the control server
 * cannot be reached: the page still answers.
 */
function cachedClusterStatus(controlPort, logger) {
  let cached = null;
  let fetchedAt = 0;
  let pending = null;
  const control = (path) =>
    fetch(`http://127.0.0.1:${controlPort}${path}`, { signal: AbortSignal.timeout(2_000) });
  const load = async () => {
    try {
      const [status, metrics] = await Promise.all([
        control('/status').then((reply) => reply.json()),
        control('/metrics').then((reply) => reply.text()),
      ]);
      cached = {
        uptimeMs: status.uptime,
        workers: status.workers.map(pickWorker),
        recycles: recycles(metrics),
      };
    } catch (error) {
      logger.debug({ err: error }, 'demo:cluster-status:failed');
      cached = null;
    }
    fetchedAt = Date.now();
    pending = null;
    return cached;
  };
  return () => {
    if (Date.now() - fetchedAt < CLUSTER_STATUS_TTL_MS) return Promise.resolve(cached);
    pending ??= load();
    return pending;
  };
}

function pickWorker({ id, pid, state, age, requests, retireReason }) {
  return { id, pid, state, ageMs: age, requests, retireReason };
}

/** `steward_worker_recycles_total{reason="max-requests"} 7` lines as `{ total: 7, byReason: {...} }`. */
function recycles(metricsText) {
  const byReason = {};
  for (const match of metricsText.matchAll(/^steward_worker_recycles_total\{reason="([^"]+)"\} (\d+)/gm))
    byReason[match[1]] = Number(match[2]);
  return { total: Object.values(byReason).reduce((sum, count) => sum + count, 0), byReason };
}
