import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { createServer } from 'node:net';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
export const benchDir = fileURLToPath(new URL('../', import.meta.url));

/** A free TCP port on loopback. */
export async function freePort(): Promise<number> {
  const server = createServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  server.close();
  await once(server, 'close');
  return port;
}

export interface App {
  child: ChildProcess;
  url: string;
  stop(): Promise<void>;
}

/** Starts a bench app (its own process group) and resolves once `readyCount` distinct pids answered. */
export async function startApp(file: string, env: Record<string, string> = {}, readyCount = 2): Promise<App> {
  const port = await freePort();
  const child = spawn(process.execPath, [benchDir + file], {
    env: { ...process.env, PORT: String(port), ...env },
    stdio: ['ignore', 'ignore', 'inherit'],
    detached: true,
  });
  const url = `http://127.0.0.1:${port}/`;
  const deadline = Date.now() + 20_000;
  const pids = new Set<string>();
  while (pids.size < readyCount) {
    if (Date.now() > deadline) throw new Error(`${file} did not get ready`);
    await new Promise((resolve) => setTimeout(resolve, 100));
    const pid = await probe(url);
    if (pid) pids.add(pid);
    if (pid === 'any') break;
  }
  return {
    child,
    url,
    async stop() {
      const exited = once(child, 'exit');
      try {
        process.kill(-child.pid!, 'SIGTERM');
      } catch {
        return;
      }
      const timer = setTimeout(() => process.kill(-child.pid!, 'SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        // group already gone
      }
    },
  };
}

/** Resolves with a token identifying the answering worker, 'any' for apps that do not say, or null. */
function probe(url: string): Promise<string | null> {
  return new Promise((resolve) => {
    const request = http.get(url, { agent: false }, (response) => {
      let body = '';
      response.on('data', (chunk) => {
        body += chunk;
      });
      response.on('end', () => {
        const match = /"pid":(\d+)/.exec(body);
        resolve(match ? match[1]! : response.statusCode === 200 ? 'any' : null);
      });
    });
    request.on('error', () => resolve(null));
    request.setTimeout(1_000, () => request.destroy());
  });
}

export interface LoadResult {
  tool: 'wrk' | 'autocannon' | 'agent' | 'fetch' | 'open-loop';
  requests: number;
  /**
   * Requests the client wrote (autocannon with `--amount`, the Node clients, wrk through a Lua hook);
   * `sent - requests`, less `inFlightAtStop`, were never answered.
   */
  sent?: number;
  /** Open loop: the most requests that were due and not yet written at once (the client fell behind). */
  peakQueued?: number;
  /** Open loop: the generator's CPU over its run, as a share of one core. */
  generatorCpuShare?: number;
  /** Requests a duration-bound client may have in flight when it stops (one per connection), not lost. */
  inFlightAtStop?: number;
  rps: number;
  p50Ms: number;
  p99Ms: number;
  /** Socket errors (connect, read, write, timeout) plus non-2xx responses. */
  errors: number;
  non2xx: number;
  detail: string;
}

/**
 * Counts the requests wrk writes: a `request()` hook returning the one prepared request (wrk then calls it
 * per request, without parsing responses in Lua), summed over its threads when it is done. wrk calls the
 * hook once more before the run, on its first thread, to check what it returns: that call sends nothing.
 */
const WRK_COUNT_SENT = `
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) sent = 0; prepared = wrk.format() end
function request() sent = sent + 1; return prepared end
function done(summary, latency, requests)
  local total = 0
  for _, thread in ipairs(threads) do total = total + thread:get("sent") end
  io.write(string.format("requests written: %d\\n", total - 1))
end
`;

/**
 * Runs wrk (a separate C process) with a latency distribution. `sent` is what it wrote: when it stops, each
 * connection may have one request in flight, so `sent - requests` up to `connections` is the requests
 * in flight at the stop, and anything above that was lost.
 */
export async function runWrk(
  url: string,
  connections: number,
  seconds: number,
  threads = 1,
): Promise<LoadResult> {
  const script = join(mkdtempSync(join(tmpdir(), 'wrk-')), 'count-sent.lua');
  writeFileSync(script, WRK_COUNT_SENT);
  const { stdout } = await run(
    'wrk',
    ['-t', String(threads), '-c', String(connections), '-d', `${seconds}s`, '--latency', '-s', script, url],
    {
      maxBuffer: 1 << 20,
    },
  ).finally(() => rmSync(join(script, '..'), { recursive: true, force: true }));
  const requests = Number(/(\d+) requests in/.exec(stdout)?.[1] ?? 0);
  const sent = Number(/requests written: (\d+)/.exec(stdout)?.[1] ?? Number.NaN);
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(stdout)?.[1] ?? 0);
  const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(stdout);
  const socketErrors = socket ? socket.slice(1).reduce((sum, n) => sum + Number(n), 0) : 0;
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(stdout)?.[1] ?? 0);
  return {
    tool: 'wrk',
    requests,
    sent,
    inFlightAtStop: connections,
    rps,
    p50Ms: wrkLatency(stdout, '50%'),
    p99Ms: wrkLatency(stdout, '99%'),
    errors: socketErrors + non2xx,
    non2xx,
    detail: socket ? socket[0] : 'no socket errors',
  };
}

/** Requests sent and never answered: what the client wrote, less the answers and what was in flight at its stop. */
export function lostRequests(result: LoadResult): number | undefined {
  if (result.sent === undefined || Number.isNaN(result.sent)) return undefined;
  return Math.max(0, result.sent - result.requests - (result.inFlightAtStop ?? 0));
}

function wrkLatency(output: string, percentile: string): number {
  const match = new RegExp(`${percentile}\\s+([\\d.]+)(us|ms|s)`).exec(output);
  if (!match) return Number.NaN;
  const value = Number(match[1]);
  return match[2] === 'us' ? value / 1000 : match[2] === 's' ? value * 1000 : value;
}

/**
 * Runs autocannon in its own process (so the load generator never shares an event loop with the bench).
 * With `amount`, it sends exactly that many requests and `sent` against `requests` counts the lost ones
 * (with a duration, the requests in flight when it stops are also "sent and not answered").
 */
export async function runAutocannon(
  url: string,
  connections: number,
  seconds: number,
  amount?: number,
  /** Requests per second overall (open loop: latency counts from when a request was due). */
  rate?: number,
): Promise<LoadResult> {
  const bin = fileURLToPath(new URL('../../node_modules/autocannon/autocannon.js', import.meta.url));
  const limit = amount ? ['-a', String(amount)] : ['-d', String(seconds)];
  const pace = rate ? ['-R', String(Math.round(rate))] : [];
  const { stdout } = await run(
    process.execPath,
    [bin, '--json', '-c', String(connections), ...limit, ...pace, url],
    { maxBuffer: 16 << 20 },
  );
  const result = JSON.parse(stdout) as {
    requests: { total: number; average: number; sent: number };
    latency: { p50: number; p99: number };
    errors: number;
    timeouts: number;
    non2xx: number;
    resets?: number;
  };
  return {
    tool: 'autocannon',
    requests: result.requests.total,
    ...(amount ? { sent: result.requests.sent } : {}),
    rps: result.requests.average,
    p50Ms: result.latency.p50,
    p99Ms: result.latency.p99,
    errors: result.errors + result.timeouts + result.non2xx + (result.resets ?? 0),
    non2xx: result.non2xx,
    detail: `errors ${result.errors}, timeouts ${result.timeouts}, resets ${result.resets ?? 0}`,
  };
}

/**
 * Runs bench/lib/open-loop.js: `rate` requests per second fall due for `seconds` (after a warm-up of
 * `warmupSeconds` at the same rate, not recorded), each sent on an idle one of `sockets` keep-alive connections; latency counts from when a
 * request fell due, in fractions of a millisecond. It waits for every answer, so `sent - requests` were lost.
 */
export async function runOpenLoop(
  url: string,
  rate: number,
  seconds: number,
  sockets = 50,
  warmupSeconds = 1,
): Promise<LoadResult> {
  const { stdout } = await run(
    process.execPath,
    [
      `${benchDir}lib/open-loop.js`,
      url,
      String(Math.round(rate)),
      String(seconds),
      String(sockets),
      String(warmupSeconds),
    ],
    { maxBuffer: 1 << 20 },
  );
  const result = JSON.parse(stdout) as {
    due: number;
    sent: number;
    answered: number;
    non2xx: number;
    errors: number;
    maxQueued: number;
    rps: number;
    p50Ms: number;
    p99Ms: number;
    p999Ms: number;
    cpuShare: number;
  };
  return {
    tool: 'open-loop',
    peakQueued: result.maxQueued,
    requests: result.answered,
    sent: result.sent,
    inFlightAtStop: 0,
    rps: result.rps,
    p50Ms: result.p50Ms,
    p99Ms: result.p99Ms,
    errors: result.errors + result.non2xx + (result.due - result.sent),
    non2xx: result.non2xx,
    detail: `due ${result.due}, sent ${result.sent}, answered ${result.answered}, most queued ${result.maxQueued}, p99.9 ${result.p999Ms.toFixed(2)} ms, generator CPU ${Math.round(result.cpuShare * 100)} % of a core`,
    generatorCpuShare: result.cpuShare,
  };
}

/**
 * The capacity an open loop of bench/lib/open-loop.js is set against: the same client on `sockets`
 * connections, each sending its next request as soon as its answer arrives, for `seconds`; answers per second.
 */
export async function openLoopCapacity(url: string, seconds: number, sockets = 50): Promise<number> {
  const { stdout } = await run(
    process.execPath,
    [`${benchDir}lib/open-loop.js`, url, '0', String(seconds), String(sockets)],
    { maxBuffer: 1 << 20 },
  );
  return (JSON.parse(stdout) as { rps: number }).rps;
}

/** Runs bench/lib/node-client.js: Node's http.Agent or fetch (undici), keep-alive, counting sent requests. */
export async function runNodeClient(
  tool: 'agent' | 'fetch',
  url: string,
  connections: number,
  seconds: number,
): Promise<LoadResult> {
  const { stdout } = await run(
    process.execPath,
    [`${benchDir}lib/node-client.js`, url, tool, String(connections), String(seconds)],
    { maxBuffer: 1 << 20 },
  );
  const result = JSON.parse(stdout) as {
    sent: number;
    answered: number;
    non2xx: number;
    errors: Record<string, number>;
    rps: number;
    p50Ms: number;
    p99Ms: number;
  };
  const errorCount = Object.values(result.errors).reduce((sum, n) => sum + n, 0);
  return {
    tool,
    requests: result.answered,
    sent: result.sent,
    rps: result.rps,
    p50Ms: result.p50Ms,
    p99Ms: result.p99Ms,
    errors: errorCount + result.non2xx,
    non2xx: result.non2xx,
    detail: errorCount === 0 ? 'no errors' : JSON.stringify(result.errors),
  };
}

export interface Proxy {
  url: string;
  stop(): Promise<void>;
}

/**
 * Starts nginx (Debian's) in front of `upstreamPort`, the way it is usually deployed: HTTP/1.1 to the
 * upstream with a pool of keep-alive connections. Its configuration, pid and logs live in a temp dir.
 */
export async function startNginx(upstreamPort: number): Promise<Proxy> {
  const dir = mkdtempSync(join(tmpdir(), 'steward-nginx-'));
  const port = await freePort();
  const conf = join(dir, 'nginx.conf');
  writeFileSync(
    conf,
    `worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  upstream app {
    server 127.0.0.1:${upstreamPort};
    keepalive 64;
  }
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
`,
  );
  const child = spawn('nginx', ['-p', dir, '-c', conf, '-g', 'daemon off;'], {
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const url = `http://127.0.0.1:${port}/`;
  const deadline = Date.now() + 10_000;
  while (!(await probe(url))) {
    if (Date.now() > deadline) throw new Error('nginx did not answer');
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return {
    url,
    async stop() {
      const exited = once(child, 'exit');
      child.kill('SIGQUIT');
      await exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Resident set size of a process, in MiB, from /proc. */
export function rssMiB(pid: number): number {
  const kb = Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]);
  return kb / 1024;
}

/** The median of `samples` RSS readings 200 ms apart: one reading can land on a GC peak. */
export async function sampleRss(pid: number, samples: number): Promise<number> {
  const values: number[] = [];
  for (let i = 0; i < samples; i++) {
    values.push(rssMiB(pid));
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  return median(values);
}

/** The 1, 5 and 15 minute load averages, for the lines printed before and after a run. */
export function loadAverages(): string {
  return loadavg()
    .map((value) => value.toFixed(2))
    .join(' ');
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

/** Replaces (or appends) the `## <name>` section of docs/benchmarks.md. */
export function writeBenchmarkSection(name: string, body: string): void {
  const file = fileURLToPath(new URL('../../docs/benchmarks.md', import.meta.url));
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    text =
      '# Benchmarks\n\nEvery figure is a ratio against a baseline measured in the same run, with the absolute numbers for context.\nRun one with `npm run bench:<name>`; `npm run bench` lists them.\n';
  }
  const heading = `## ${name}`;
  const start = text.indexOf(`\n${heading}\n`);
  const section = `\n${heading}\n\n${body.trim()}\n`;
  if (start < 0) text = `${text.trimEnd()}\n${section}`;
  else {
    const next = text.indexOf('\n## ', start + heading.length + 1);
    text = text.slice(0, start) + section + (next < 0 ? '' : text.slice(next));
  }
  writeFileSync(file, text.endsWith('\n') ? text : `${text}\n`);
}

/** Machine context printed with every result. */
export function machineNote(): string {
  return `node ${process.version}, ${availableParallelism()} cores, ${new Date().toISOString().slice(0, 10)}`;
}

/** Linux clock ticks per second (`getconf CLK_TCK`), which /proc/<pid>/stat times are counted in. */
const CLOCK_TICKS = 100;

/** utime, stime, cutime, cstime and the parent pid from /proc/<pid>/stat. */
function procTimes(pid: number): { own: number; reaped: number; ppid: number } | null {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    const [ppid, utime, stime, cutime, cstime] = [1, 11, 12, 13, 14].map((i) => Number(fields[i]));
    return { own: utime! + stime!, reaped: cutime! + cstime!, ppid: ppid! };
  } catch {
    return null;
  }
}

/**
 * CPU used so far by a cluster: the primary, its live workers, and the workers it has reaped. Unlike
 * throughput, CPU per request does not depend on what else the shared machine runs.
 */
export function clusterCpuSeconds(primary: number): number {
  const root = procTimes(primary);
  if (!root) return Number.NaN;
  let ticks = root.own + root.reaped;
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const child = procTimes(Number(entry));
    if (child?.ppid === primary) ticks += child.own;
  }
  return ticks / CLOCK_TICKS;
}
