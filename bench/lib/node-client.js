// A keep-alive load client in its own process: CONNECTIONS loops, each sending one GET at a time for
// SECONDS, through Node's http.Agent (`agent`) or fetch (undici, `fetch`); then it waits for every request
// still in flight, so `sent` against `answered` counts exactly the requests lost. Prints one JSON line.
import http from 'node:http';

const [url, mode, connectionsArg, secondsArg] = process.argv.slice(2);
const connections = Number(connectionsArg);
const endAt = Date.now() + Number(secondsArg) * 1000;
const agent = new http.Agent({ keepAlive: true, maxSockets: connections });
let sent = 0;
let answered = 0;
let non2xx = 0;
const errors = {};
const latencies = [];

function viaAgent() {
  return new Promise((resolve, reject) => {
    const request = http.get(url, { agent }, (response) => {
      response.resume();
      response.on('end', () => resolve(response.statusCode));
      response.on('error', reject);
    });
    request.on('error', reject);
  });
}

async function viaFetch() {
  const response = await fetch(url);
  await response.arrayBuffer();
  return response.status;
}

const send = mode === 'fetch' ? viaFetch : viaAgent;
async function loop() {
  while (Date.now() < endAt) {
    sent++;
    const started = performance.now();
    try {
      const status = await send();
      answered++;
      if (status < 200 || status >= 300) non2xx++;
      latencies.push(performance.now() - started);
    } catch (error) {
      const code = error.cause?.code ?? error.code ?? error.message;
      errors[code] = (errors[code] ?? 0) + 1;
    }
  }
}

const started = performance.now();
await Promise.all(Array.from({ length: connections }, loop));
const seconds = (performance.now() - started) / 1000;
latencies.sort((a, b) => a - b);
const at = (p) => latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))] ?? Number.NaN;
process.stdout.write(
  `${JSON.stringify({ sent, answered, non2xx, errors, rps: answered / seconds, p50Ms: at(0.5), p99Ms: at(0.99) })}\n`,
);
agent.destroy();
