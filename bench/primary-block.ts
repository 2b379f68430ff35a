/** Wait for a new HTTP connection while the primary's event loop is blocked 4 s, round-robin vs SCHED_NONE. */
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { machineNote, median, startApp, writeBenchmarkSection } from './lib/load.js';

const BLOCK_MS = 4_000;
/** New connections opened during the block, one every SPACING_MS from its start. */
const CONNECTIONS = 30;
const SPACING_MS = 100;
const ROUNDS = 3;

function timedGet(url: string): Promise<number> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const request = http.get(url, { agent: false }, (response) => {
      response.resume();
      response.on('end', () => resolve(performance.now() - started));
    });
    request.setTimeout(30_000, () => request.destroy(new Error('timed out')));
    request.on('error', reject);
  });
}

async function measure(policy: 'rr' | 'none'): Promise<number[]> {
  const waits: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    const blockFile = join(tmpdir(), `steward-primary-block-${process.pid}-${policy}-${round}`);
    const app = await startApp('apps/primary-block-app.js', {
      NODE_CLUSTER_SCHED_POLICY: policy,
      BLOCK_FILE: blockFile,
      BLOCK_MS: String(BLOCK_MS),
    });
    try {
      writeFileSync(blockFile, '');
      while (!existsSync(`${blockFile}.started`)) await new Promise((resolve) => setTimeout(resolve, 5));
      const pending: Promise<number>[] = [];
      for (let i = 0; i < CONNECTIONS; i++) {
        pending.push(timedGet(app.url));
        await new Promise((resolve) => setTimeout(resolve, SPACING_MS));
      }
      waits.push(...(await Promise.all(pending)));
    } finally {
      await app.stop();
      rmSync(blockFile, { force: true });
      rmSync(`${blockFile}.started`, { force: true });
    }
  }
  return waits;
}

const fmt = (ms: number) => `${Math.round(ms).toLocaleString('en-US')} ms`;
const rows: string[] = [];
for (const policy of ['rr', 'none'] as const) {
  const waits = await measure(policy);
  const sorted = [...waits].sort((a, b) => a - b);
  const row = `| \`${policy}\`${policy === 'rr' ? ' (default)' : ''} | ${waits.length} | ${fmt(median(waits))} | ${fmt(sorted[Math.floor(sorted.length * 0.9)]!)} | ${fmt(sorted.at(-1)!)} |`;
  console.log(row);
  rows.push(row);
}
writeBenchmarkSection(
  'Blocked primary: new connections',
  `
\`npm run bench:primary-block\`: the primary's event loop busy for ${BLOCK_MS / 1000} s (as a blocking service with
\`placement: 'primary'\` would make it); during the block a new connection is opened every ${SPACING_MS} ms
(${CONNECTIONS} per round, ${ROUNDS} rounds) and timed to its complete answer. ${machineNote()}.

| \`NODE_CLUSTER_SCHED_POLICY\` | connections | median wait | p90 | max |
| --- | --- | --- | --- | --- |
${rows.join('\n')}

Under round-robin the primary accepts every connection and hands it to a worker, so nothing is answered
until its loop runs again; with \`none\` the workers accept on the shared socket themselves.
`,
);
