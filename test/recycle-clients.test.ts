import assert from 'node:assert/strict';
import http from 'node:http';
import { test } from 'node:test';
import { event } from './helpers/process.js';
import { startRecycleCluster } from './helpers/recycle-http.js';

const CONNECTIONS = 20;
const RECYCLES = 3;

interface Count {
  sent: number;
  answered: number;
  non2xx: number;
  errors: string[];
}

/** Keep-alive loops, one request at a time each, until `stop` resolves; every request counted. */
async function load(send: () => Promise<number>, stop: Promise<unknown>): Promise<Count> {
  const count: Count = { sent: 0, answered: 0, non2xx: 0, errors: [] };
  let stopped = false;
  void stop.then(() => {
    stopped = true;
  });
  const loop = async () => {
    while (!stopped) {
      count.sent++;
      try {
        const status = await send();
        count.answered++;
        if (status < 200 || status >= 300) count.non2xx++;
      } catch (error) {
        const cause = (error as { cause?: { code?: string } }).cause;
        count.errors.push(cause?.code ?? (error as NodeJS.ErrnoException).code ?? String(error));
      }
    }
  };
  await Promise.all(Array.from({ length: CONNECTIONS }, loop));
  return count;
}

async function throughRecycles(t: { after(fn: () => void): void }, send: (url: string) => Promise<number>) {
  const { cluster, port } = await startRecycleCluster(t, { recycle: { maxRequests: 2_000, minLifetime: 0 } });
  const url = `http://127.0.0.1:${port}/`;
  // Until three recycles are over (a busy machine boots replacements slowly), at most 60 s.
  const done = cluster.waitForLogs(event('worker:recycle:done'), RECYCLES, 60_000).catch(() => undefined);
  const count = await load(() => send(url), done);
  const recycles = cluster.logs.filter(event('worker:recycle:done'));
  assert.ok(recycles.length >= RECYCLES, `only ${recycles.length} recycles under load`);
  for (const line of recycles) assert.equal(line.code, 0, 'every drain ended cleanly');
  assert.deepEqual(count.errors, []);
  assert.equal(count.non2xx, 0);
  assert.ok(count.answered > 2_000 * RECYCLES, `only ${count.answered} answered`);
  assert.equal(count.answered, count.sent, 'every request sent was answered');
}

test("Node's http.Agent (keep-alive) through several recycles: every request sent is answered", async (t) => {
  const agent = new http.Agent({ keepAlive: true, maxSockets: CONNECTIONS });
  t.after(() => agent.destroy());
  await throughRecycles(
    t,
    (url) =>
      new Promise((resolve, reject) => {
        const request = http.get(url, { agent }, (response) => {
          response.resume();
          response.on('end', () => resolve(response.statusCode ?? 0));
          response.on('error', reject);
        });
        request.on('error', reject);
      }),
  );
});

test("Node's fetch (undici, keep-alive) through several recycles: every request sent is answered", async (t) => {
  await throughRecycles(t, async (url) => {
    const response = await fetch(url);
    await response.arrayBuffer();
    return response.status;
  });
});
