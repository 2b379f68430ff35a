// An open-loop HTTP load generator in its own process: requests are due at a fixed RATE per second for
// SECONDS, whatever the server does, and each is sent on the first idle one of SOCKETS keep-alive
// connections (one request at a time per connection). Latency runs from when a request was due, not
// from when it could be written, so a server that stalls is charged for the requests that queued behind
// it (no coordinated omission), and it is measured with performance.now(), in fractions of a millisecond.
// Plain sockets and a minimal HTTP/1.1 response reader (Content-Length bodies only) keep the generator's
// own cost per request small. RATE 0 measures the capacity the open loop is set against instead: every
// connection sends its next request as soon as its answer arrives (a closed loop of this same client), and
// only the rate answered is reported. After SECONDS, the requests already due are still sent and every answer is
// awaited (up to 10 s), so `sent` against `answered` counts exactly the requests lost. Prints one JSON line.
import net from 'node:net';
import { performance } from 'node:perf_hooks';

const [url, rateArg, secondsArg, socketsArg, warmupArg] = process.argv.slice(2);
const { hostname, port, pathname } = new URL(url);
const rate = Number(rateArg);
const saturate = rate === 0;
const seconds = Number(secondsArg);
const socketCount = Number(socketsArg ?? 50);
// The first WARMUP seconds run at the same rate, unrecorded: the generator's own code gets compiled first.
const warmup = saturate ? 0 : Math.round(rate * Number(warmupArg ?? 1));
const request = Buffer.from(`GET ${pathname} HTTP/1.1\r\nHost: ${hostname}:${port}\r\n\r\n`, 'latin1');

const total = saturate ? Number.POSITIVE_INFINITY : warmup + Math.round(rate * seconds);
const latencies = new Float64Array(saturate ? 0 : total);
let recorded = 0;
let due = 0; // requests that fell due so far; request i is due at start + i / rate
let sent = 0;
let answered = 0;
let non2xx = 0;
let errors = 0;
let maxQueued = 0;
const idle = [];
let start = Number.POSITIVE_INFINITY; // set once every connection is open
const dueAt = (i) => start + (i * 1000) / rate;

function connect() {
  const socket = net.connect(Number(port), hostname);
  socket.setNoDelay(true);
  const state = { socket, buffer: '', inFlight: -1 };
  socket.setEncoding('latin1');
  socket.on('connect', () => {
    idle.push(state);
    if (idle.length === socketCount && start === Number.POSITIVE_INFINITY) started();
    pump();
  });
  socket.on('data', (chunk) => {
    state.buffer += chunk;
    read(state);
    pump();
  });
  socket.on('error', () => {});
  socket.on('close', () => {
    // A request in flight on a connection that closed was lost; the count says so, and a new one replaces it.
    if (state.inFlight >= 0) errors++;
    const at = idle.indexOf(state);
    if (at >= 0) idle.splice(at, 1);
    if (!finished) connect();
  });
}

function read(state) {
  for (;;) {
    const headerEnd = state.buffer.indexOf('\r\n\r\n');
    if (headerEnd < 0) return;
    const length = /content-length:\s*(\d+)/i.exec(state.buffer.slice(0, headerEnd));
    const end = headerEnd + 4 + (length ? Number(length[1]) : 0);
    if (state.buffer.length < end) return;
    const status = Number(state.buffer.slice(9, 12));
    state.buffer = state.buffer.slice(end);
    if (state.inFlight < 0) continue;
    answered++;
    if (!saturate && state.inFlight >= warmup)
      latencies[recorded++] = performance.now() - dueAt(state.inFlight);
    if (status < 200 || status >= 300) non2xx++;
    state.inFlight = -1;
    idle.push(state);
  }
}

let next = 0; // the oldest request due and not yet sent
function pump() {
  const now = performance.now();
  if (now < start) return;
  if (saturate) {
    while (idle.length > 0 && now < start + seconds * 1000) {
      const state = idle.pop();
      state.inFlight = sent++;
      state.socket.write(request);
    }
    return;
  }
  while (due < total && dueAt(due) <= now) due++;
  // Counted once the warm-up is over, as the latencies are.
  if (next >= warmup) maxQueued = Math.max(maxQueued, due - next);
  while (next < due && idle.length > 0) {
    const state = idle.pop();
    state.inFlight = next++;
    sent++;
    state.socket.write(request);
  }
}

let finished = false;
let started;
const connected = new Promise((resolve) => {
  started = resolve;
});
for (let i = 0; i < socketCount; i++) connect();
await connected;
start = performance.now();
// The generator's own CPU over the run, as a share of one core: on a machine it shares with the server,
// what it takes is what the server does not get.
const cpuAtStart = process.cpuUsage();
// A timer of 1 ms is the finest Node offers; the requests due in between are sent together at each tick,
// and their latency still counts from when each fell due. Answers also send what is due (see `read`).
const ticker = setInterval(pump, 1);
const endAt = saturate ? start + seconds * 1000 : dueAt(total);
const drainUntil = endAt + 10_000;
await new Promise((resolve) => {
  const check = setInterval(() => {
    pump();
    const now = performance.now();
    const allSent = saturate ? now >= endAt : due === total && next === total;
    if ((allSent && answered + errors >= sent) || now > drainUntil) {
      clearInterval(check);
      resolve();
    }
  }, 5);
});
finished = true;
clearInterval(ticker);
const cpu = process.cpuUsage(cpuAtStart);
const cpuShare = (cpu.user + cpu.system) / 1000 / (performance.now() - start);
const elapsed = saturate ? seconds : (performance.now() - dueAt(warmup)) / 1000;
const measured = latencies.subarray(0, recorded).sort();
const at = (p) => measured[Math.min(measured.length - 1, Math.floor(p * measured.length))] ?? Number.NaN;
process.stdout.write(
  `${JSON.stringify({ due: saturate ? sent : total, sent, answered, non2xx, errors, maxQueued, rps: (saturate ? answered : recorded) / elapsed, p50Ms: at(0.5), p99Ms: at(0.99), p999Ms: at(0.999), cpuShare })}\n`,
);
process.exit(0);
