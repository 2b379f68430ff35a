import { PAGE_SCRIPT } from './page-script.js';
import { PAGE_STYLE } from './page-style.js';

function headers(names: string[], numeric: string[] = []): string {
  const cells = names.map((name) => {
    const className = numeric.includes(name) ? ' class="num"' : '';
    return `<th scope="col"${className}>${name}</th>`;
  });
  return `<thead><tr>${cells.join('')}</tr></thead>`;
}

/**
 * The dashboard page: static HTML whose tables the inline script fills from `dashboard.json`. `nonce`
 * is the per-response value the Content-Security-Policy allows the inline script and style with.
 */
export function dashboardPage(nonce: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>cluster-steward</title>
<style nonce="${nonce}">${PAGE_STYLE}</style>
</head>
<body>
<header>
  <h1>cluster-steward</h1>
  <span>primary pid <strong id="primary-pid">…</strong></span>
  <span>up <strong id="primary-uptime">…</strong></span>
  <span id="cluster-state"></span>
  <span><span id="connection" role="status">connecting…</span> <span id="updated" class="muted"></span></span>
</header>
<main>
<section aria-labelledby="workers-title">
  <h2 id="workers-title">Workers</h2>
  <table id="workers">
    <caption>HTTP workers; requests per second over the last minute, drawn from this page's own polls.</caption>
    ${headers(['Id', 'PID', 'State', 'Age', 'Requests', 'Requests/s', 'RSS', 'Heap', 'In flight', 'Retiring because'], ['Requests', 'Requests/s', 'RSS', 'Heap', 'In flight'])}
    <tbody></tbody>
  </table>
</section>
<section aria-labelledby="recycles-title">
  <h2 id="recycles-title">Recycle timeline</h2>
  <table id="recycles">
    <caption>Newest first, from the lifecycle events.</caption>
    ${headers(['Time', 'Worker', 'PID', 'Reason', 'Outcome', 'Age', 'Requests', 'Replacement', 'Boot', 'Drain'], ['Requests', 'Boot', 'Drain'])}
    <tbody></tbody>
  </table>
</section>
<section aria-labelledby="services-title">
  <h2 id="services-title">Services</h2>
  <p id="services-host" class="muted">No services host.</p>
  <table id="services">
    <caption>As the services host last reported; rates per second drawn from this page's own polls; a service's last error in the row under it.</caption>
    ${headers(['Service', 'State', 'Since', 'Processed/s', 'Failed/s', 'Processed', 'Failed', 'Dead-lettered', 'Lag', 'Queue depth', 'Restarts', 'Problem'], ['Processed/s', 'Failed/s', 'Processed', 'Failed', 'Dead-lettered', 'Lag', 'Queue depth', 'Restarts'])}
    <tbody></tbody>
  </table>
</section>
<section aria-labelledby="valve-title" id="valve-section" hidden>
  <h2 id="valve-title">Valve</h2>
  <dl id="valve"></dl>
</section>
<section aria-labelledby="actions-title" id="actions-section" hidden>
  <h2 id="actions-title">Actions</h2>
  <form class="actions" id="actions" autocomplete="off">
    <label>Control token<input type="password" id="action-token" required autocomplete="off"></label>
    <button type="submit" data-action="recycle-workers">Recycle all workers</button>
    <button type="submit" data-action="restart-services">Restart services</button>
    <output id="action-result" aria-live="polite"></output>
  </form>
</section>
<section aria-labelledby="events-title">
  <h2 id="events-title">Lifecycle events</h2>
  <table id="events">
    <caption id="events-caption">The primary's last lifecycle events, newest first.</caption>
    ${headers(['#', 'Time', 'Level', 'Event', 'Details'])}
    <tbody></tbody>
  </table>
</section>
</main>
<script nonce="${nonce}">${PAGE_SCRIPT}</script>
</body>
</html>
`;
}
