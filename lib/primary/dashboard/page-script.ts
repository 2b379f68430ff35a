/**
 * The dashboard's script: plain browser JavaScript, no framework and no build step, so the page works
 * offline and its size is what is read here. It polls `dashboard.json` every second, passing the last
 * lifecycle sequence number it holds, and computes the rates and sparklines from its own samples (the
 * primary keeps no history for it). All data reaches the page through `textContent`, never as HTML.
 */
export const PAGE_SCRIPT = String.raw`
'use strict';
(function () {
  var POLL_MS = 1000;
  var HISTORY = 60;
  var lastSeq = 0;
  var events = [];
  var capacity = 200;
  var recycles = [];
  var workerHistory = new Map();
  var serviceHistory = new Map();
  var seenServiceStates = new Map();
  var hostPid = null;
  var hostForks = 0;
  var byId = function (id) { return document.getElementById(id); };

  function el(tag, text, className) {
    var node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (className) node.className = className;
    return node;
  }
  function cell(row, text, className) { var td = el('td', text, className); row.appendChild(td); return td; }
  function fill(tbody, rows) { tbody.replaceChildren.apply(tbody, rows); }
  function duration(ms) {
    if (ms === null || ms === undefined) return '—';
    if (ms < 1000) return Math.round(ms) + ' ms';
    var s = ms / 1000;
    if (s < 60) return s.toFixed(1) + ' s';
    var m = Math.floor(s / 60);
    if (m < 60) return m + ' min ' + Math.floor(s % 60) + ' s';
    var h = Math.floor(m / 60);
    return h < 48 ? h + ' h ' + (m % 60) + ' min' : Math.floor(h / 24) + ' d ' + (h % 24) + ' h';
  }
  function bytes(n) {
    if (!n) return '—';
    return n >= 1073741824 ? (n / 1073741824).toFixed(2) + ' GiB' : (n / 1048576).toFixed(1) + ' MiB';
  }
  function rate(n) { return n === null ? '—' : n < 10 ? n.toFixed(1) + '/s' : Math.round(n) + '/s'; }
  function clock(at) { return new Date(at).toLocaleTimeString(); }
  function tone(state) {
    if (state === 'ready' || state === 'running') return 'good';
    if (state === 'failed' || state === 'dead' || state === 'stopped') return 'bad';
    return 'busy';
  }
  function stateBadge(label, state) { return el('span', label, 'state ' + tone(state)); }

  /** Per-second rate from the last two samples of a counter; keeps a short history for the sparkline. */
  function track(histories, key, value, at) {
    var entry = histories.get(key);
    if (!entry) { entry = { last: null, rates: [] }; histories.set(key, entry); }
    var result = null;
    if (entry.last && at > entry.last.at && value >= entry.last.value) {
      result = (value - entry.last.value) / ((at - entry.last.at) / 1000);
      entry.rates.push(result);
      if (entry.rates.length > HISTORY) entry.rates.shift();
    } else if (entry.last && at > entry.last.at) result = entry.rates[entry.rates.length - 1] || 0;
    if (!entry.last || at > entry.last.at) entry.last = { value: value, at: at };
    entry.seen = at;
    return { rate: result, rates: entry.rates };
  }
  function forget(histories, now) {
    histories.forEach(function (entry, key) { if (entry.seen !== now) histories.delete(key); });
  }

  function sparkline(rates) {
    var ns = 'http://www.w3.org/2000/svg';
    var svg = document.createElementNS(ns, 'svg');
    svg.setAttribute('class', 'spark');
    svg.setAttribute('width', '90');
    svg.setAttribute('height', '20');
    svg.setAttribute('viewBox', '0 0 90 20');
    svg.setAttribute('aria-hidden', 'true');
    if (rates.length > 1) {
      var max = Math.max.apply(null, rates.concat([1]));
      var step = 90 / (HISTORY - 1);
      var offset = 90 - (rates.length - 1) * step;
      var points = rates.map(function (value, index) {
        return (offset + index * step).toFixed(1) + ',' + (19 - (value / max) * 18).toFixed(1);
      });
      var line = document.createElementNS(ns, 'polyline');
      line.setAttribute('points', points.join(' '));
      svg.appendChild(line);
    }
    return svg;
  }

  function renderWorkers(status) {
    var rows = status.workers.map(function (w) {
      var row = el('tr');
      row.dataset.pid = String(w.pid);
      var sample = track(workerHistory, w.id, w.requests, status.at);
      cell(row, w.id);
      cell(row, w.pid, 'pid');
      cell(row, '').appendChild(stateBadge(w.state, w.state));
      cell(row, duration(w.age));
      cell(row, w.requests, 'num');
      var rateCell = cell(row, rate(sample.rate), 'num');
      rateCell.appendChild(sparkline(sample.rates));
      cell(row, bytes(w.rss), 'num');
      cell(row, bytes(w.heapUsed), 'num');
      cell(row, w.inFlight, 'num');
      cell(row, w.retireReason || '—');
      return row;
    });
    forget(workerHistory, status.at);
    if (rows.length === 0) rows.push(emptyRow('No HTTP workers.', 10));
    fill(byId('workers').tBodies[0], rows);
  }

  /** The one row of a table with nothing to show, across its columns. */
  function emptyRow(text, columns) {
    var row = el('tr');
    cell(row, text, 'muted').colSpan = columns;
    return row;
  }

  function noteRecycle(e) {
    var f = e.fields;
    if (e.event === 'worker:recycle:done' || e.event === 'worker:recycle:aborted') {
      recycles.unshift({
        at: e.at, worker: f.worker, pid: f.workerPid, reason: f.reason,
        outcome: e.event === 'worker:recycle:done' ? (f.code === 0 ? 'recycled' : 'killed after drain timeout') : 'aborted',
        age: f.age, requests: f.requests, replacement: f.replacement, bootMs: f.bootMs, drainMs: f.drainMs,
      });
      if (recycles.length > 50) recycles.pop();
    }
    if (e.event === 'services:fork') hostForks++;
  }

  function renderRecycles() {
    var rows = recycles.map(function (r) {
      var row = el('tr');
      cell(row, clock(r.at), 'time');
      cell(row, r.worker);
      cell(row, r.pid);
      cell(row, r.reason);
      cell(row, '').appendChild(stateBadge(r.outcome, r.outcome === 'recycled' ? 'ready' : 'failed'));
      cell(row, duration(r.age));
      cell(row, r.requests === undefined ? '—' : r.requests, 'num');
      cell(row, r.replacement === undefined ? '—' : r.replacement);
      cell(row, duration(r.bootMs), 'num');
      cell(row, duration(r.drainMs), 'num');
      return row;
    });
    if (rows.length === 0) rows.push(emptyRow('No recycle among the kept events.', 10));
    fill(byId('recycles').tBodies[0], rows);
  }

  /** The last error gets a full-width row under its service: the whole message, the stack when opened. */
  function errorRow(s) {
    var row = el('tr', undefined, 'error-row');
    row.dataset.serviceError = s.name;
    var header = el('th', s.name + ': last error', 'muted');
    header.scope = 'row';
    row.appendChild(header);
    var td = cell(row, '', 'error');
    td.colSpan = 11;
    var details = el('details');
    details.appendChild(el('summary', (s.lastError.code ? s.lastError.code + ': ' : '') + s.lastError.message));
    details.appendChild(el('pre', s.lastError.stack || s.lastError.message));
    td.appendChild(details);
    return row;
  }

  function serviceLabel(s) {
    var before = seenServiceStates.get(s.name);
    if (s.state !== 'running' && s.state !== 'standby') {
      if ((s.state === 'backoff' || s.state === 'starting') && (s.restarts > 0 || before === 'seen-running'))
        return 'restarting (' + s.state + ')';
    } else seenServiceStates.set(s.name, 'seen-running');
    return s.state;
  }

  function renderServices(status) {
    var snapshot = status.services;
    var host = byId('services-host');
    if (!snapshot) {
      host.textContent = 'No services host has reported.';
      fill(byId('services').tBodies[0], []);
      return;
    }
    if (hostPid !== null && hostPid !== snapshot.pid) host.dataset.previousPid = String(hostPid);
    hostPid = snapshot.pid;
    host.textContent = 'Host: ' + snapshot.role + ', pid ' + snapshot.pid + ', reported ' +
      duration(Math.max(0, status.at - snapshot.at)) + ' ago' +
      (hostForks > 1 ? ', re-forked ' + (hostForks - 1) + ' time(s) among the kept events' : '') + '.';
    var rows = [];
    snapshot.services.forEach(function (s) {
      var row = el('tr');
      row.dataset.service = s.name;
      var processed = track(serviceHistory, s.name + '\u0000p', s.processed, snapshot.at);
      var failed = track(serviceHistory, s.name + '\u0000f', s.failed, snapshot.at);
      var label = serviceLabel(s);
      row.appendChild(el('th', s.name)).scope = 'row';
      var stateCell = cell(row, '');
      stateCell.appendChild(stateBadge(label, s.state));
      if (s.leader !== null) stateCell.appendChild(el('span', s.leader ? ' leader' : ' not leader', 'muted'));
      if (s.connected === false) stateCell.appendChild(el('span', ' disconnected', 'muted'));
      cell(row, clock(s.since), 'time');
      cell(row, rate(processed.rate), 'num');
      cell(row, rate(failed.rate), 'num');
      cell(row, s.processed, 'num');
      cell(row, s.failed, 'num');
      cell(row, s.deadLettered, 'num');
      cell(row, duration(s.lagMs), 'num');
      cell(row, s.queueDepth === null ? '—' : s.queueDepth, 'num');
      cell(row, s.restarts, 'num');
      cell(row, s.problem || '—');
      rows.push(row);
      if (s.lastError) rows.push(errorRow(s));
    });
    forget(serviceHistory, snapshot.at);
    fill(byId('services').tBodies[0], rows);
  }

  function renderValve(status) {
    var section = byId('valve-section');
    var valve = status.valve;
    section.hidden = !valve;
    if (!valve) return;
    var items = [];
    Object.keys(valve).forEach(function (key) {
      var value = valve[key];
      items.push(el('dt', key));
      items.push(el('dd', typeof value === 'object' && value !== null ? JSON.stringify(value) : value));
    });
    byId('valve').replaceChildren.apply(byId('valve'), items);
  }

  function describe(fields) {
    return Object.keys(fields).map(function (key) {
      var value = fields[key];
      if (value !== null && typeof value === 'object')
        value = value.message !== undefined ? value.message : JSON.stringify(value);
      return key + '=' + value;
    }).join(' ');
  }

  function renderEvents() {
    var rows = [];
    for (var i = events.length - 1; i >= 0; i--) {
      var e = events[i];
      var row = el('tr', undefined, 'level-' + e.level);
      cell(row, e.seq);
      cell(row, clock(e.at), 'time');
      cell(row, e.level);
      cell(row, e.event, 'event');
      cell(row, describe(e.fields));
      rows.push(row);
    }
    fill(byId('events').tBodies[0], rows);
    byId('events-caption').textContent =
      'The primary\u2019s last ' + capacity + ' lifecycle events, newest first (' + events.length + ' kept).';
  }

  function acceptEvents(data) {
    capacity = data.capacity;
    // A lower sequence than ours: the primary restarted, so everything kept belongs to the old one.
    if (data.lastSeq < lastSeq) { events = []; recycles = []; hostForks = 0; }
    data.events.forEach(function (e) { events.push(e); noteRecycle(e); });
    if (events.length > capacity) events = events.slice(events.length - capacity);
    lastSeq = data.lastSeq;
  }

  function render(data) {
    var status = data.status;
    byId('primary-pid').textContent = status.pid;
    byId('primary-uptime').textContent = duration(status.uptime);
    byId('cluster-state').textContent = status.stopping ? 'shutting down' : '';
    acceptEvents(data);
    renderWorkers(status);
    renderRecycles();
    renderServices(status);
    renderValve(status);
    renderEvents();
    byId('actions-section').hidden = !data.actionsEnabled;
  }

  /** Changes the live region only when the connection does: a screen reader hears it once, not every second. */
  function setConnection(text, lost) {
    var node = byId('connection');
    if (node.textContent !== text) node.textContent = text;
    node.className = lost ? 'lost' : '';
  }

  function poll() {
    fetch('dashboard.json?after=' + lastSeq, { cache: 'no-store', credentials: 'same-origin' })
      .then(function (response) {
        if (response.status === 401) throw new Error('the control token is required (reload to log in)');
        if (!response.ok) throw new Error('HTTP ' + response.status);
        return response.json();
      })
      .then(function (data) {
        render(data);
        setConnection('live', false);
        byId('updated').textContent = 'updated ' + clock(data.status.at);
      })
      .catch(function (error) { setConnection('not updating: ' + error.message, true); })
      .then(function () { setTimeout(poll, POLL_MS); });
  }

  byId('actions').addEventListener('submit', function (event) {
    event.preventDefault();
    var action = event.submitter && event.submitter.dataset.action;
    var result = byId('action-result');
    if (!action) return;
    result.textContent = 'sending…';
    fetch('actions/' + action, {
      method: 'POST',
      headers: { authorization: 'Bearer ' + byId('action-token').value },
      credentials: 'same-origin',
    })
      .then(function (response) {
        return response.json().then(function (body) {
          result.textContent = response.ok
            ? action + ' accepted at ' + clock(Date.now())
            : 'refused: ' + (body.error && body.error.message ? body.error.message : 'HTTP ' + response.status);
        });
      })
      .catch(function (error) { result.textContent = 'failed: ' + error.message; });
  });

  poll();
})();
`;
