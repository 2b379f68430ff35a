// The demo's `/` page: plain HTML, no external assets, refreshing itself every second.

const escapeHtml = (value) => String(value ?? '').replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

const seconds = (ms) => (ms === null || ms === undefined ? '' : `${(ms / 1000).toFixed(1)} s`);

function workerRows(cluster, answering) {
  if (!cluster) return '<tr><td colspan="5">control server unreachable</td></tr>';
  return cluster.workers
    .map(
      (w) =>
        `<tr${w.id === answering ? ' class="me"' : ''}><td>${w.id}</td><td>${w.pid}</td><td>${escapeHtml(w.state)}${
          w.retireReason ? ` (${escapeHtml(w.retireReason)})` : ''
        }</td><td>${seconds(w.ageMs)}</td><td>${w.requests}</td></tr>`,
    )
    .join('');
}

function serviceRows(services) {
  if (services.length === 0) return '<tr><td colspan="6">no status received yet</td></tr>';
  return services
    .map(
      (s) =>
        `<tr><td>${escapeHtml(s.name)}</td><td>${escapeHtml(s.state)}</td><td>${s.processed}</td><td>${s.failed}</td><td>${
          s.queueDepth ?? ''
        }</td><td>${s.restarts}</td></tr>`,
    )
    .join('');
}

function recycleLine(cluster) {
  if (!cluster) return 'Recycles: unknown (control server unreachable).';
  const reasons = Object.entries(cluster.recycles.byReason)
    .map(([reason, count]) => `${escapeHtml(reason)}: ${count}`)
    .join(', ');
  return `Recycles so far: <strong>${cluster.recycles.total}</strong>${reasons ? ` (${reasons})` : ''}.`;
}

function daemonLine({ host, healthy, stale }) {
  if (!host) return '<p>The event daemon has not reported its status yet.</p>';
  const health = healthy ? '<span class="ok">healthy</span>' : '<span class="bad">not healthy</span>';
  return `<p>Running in the <strong>${escapeHtml(host.role)}</strong> process (pid ${host.pid}), never in a
worker: ${health}${stale ? ' (status stale)' : ''}.</p>`;
}

/** `facts` is the `/ping` body: worker, cluster, services, host, stale, healthy. */
export function renderPage(facts) {
  const { worker, cluster, services } = facts;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="1">
<title>cluster-steward demo</title>
<style>
body{font:15px/1.4 system-ui,sans-serif;margin:2rem;max-width:52rem;color:#222}
table{border-collapse:collapse;margin:.5rem 0 1.5rem}td,th{border:1px solid #ccc;padding:.25rem .6rem;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}tr.me{background:#fff6cc}
.ok{color:#17702a}.bad{color:#a31515}code{background:#f3f3f3;padding:0 .2rem}
</style></head><body>
<h1>cluster-steward demo</h1>
<p>Answered by <strong>worker ${worker.id}</strong> (pid ${worker.pid}), ${seconds(worker.ageMs)} old,
${worker.requests} requests served. Workers retire after 200 to 300 requests; each replacement is ready
before its predecessor drains, so no request fails.</p>
<h2>HTTP workers</h2>
<p>${recycleLine(cluster)}</p>
<table><tr><th>id</th><th>pid</th><th>state</th><th>age</th><th>requests</th></tr>${workerRows(cluster, worker.id)}</table>
<h2>Event daemon</h2>
${daemonLine(facts)}
<table><tr><th>service</th><th>state</th><th>processed</th><th>failed</th><th>queue</th><th>restarts</th></tr>${serviceRows(
    services,
  )}</table>
<p>The same as JSON: <code>/ping</code>. The control server (127.0.0.1, <code>CONTROL_PORT</code>, 9394 by
default) serves <code>/metrics</code> for the whole cluster, <code>/status</code> and <code>/healthz</code>.</p>
</body></html>
`;
}
