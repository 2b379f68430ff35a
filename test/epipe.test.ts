import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fixturesDir } from './helpers/process.js';

// The primary's stdout (shared by its workers) is a pipe into a reader process that is then killed, as
// when a log shipper restarts. Every later write gets EPIPE; SIGTERM must still drain and exit 0.
test('a primary whose stdout reader went away still stops on SIGTERM within grace, exit 0', async (t) => {
  const markers = mkdtempSync(join(tmpdir(), 'steward-epipe-'));
  const reader = spawn(process.execPath, ['-e', 'process.stdin.pipe(process.stdout)'], {
    stdio: ['pipe', 'pipe', 'ignore'],
  });
  const grace = 5000;
  const primary = spawn(process.execPath, [join(fixturesDir, 'throng-semantics.js')], {
    env: {
      ...process.env,
      STEWARD_LOG_LEVEL: 'debug',
      FIXTURE_WORKER: 'cleanup',
      FIXTURE_CLEANUP_MS: '100',
      FIXTURE_MARKER_DIR: markers,
      FIXTURE_OPTIONS: JSON.stringify({ grace, heartbeatInterval: 100 }),
    },
    stdio: ['ignore', reader.stdin, 'pipe'],
    detached: true,
  });
  // Only the primary (and its workers) hold the pipe's write end from now on.
  reader.stdin.destroy();
  t.after(() => {
    rmSync(markers, { recursive: true, force: true });
    reader.kill('SIGKILL');
    try {
      process.kill(-primary.pid!, 'SIGKILL');
    } catch {
      // already gone
    }
  });
  let stderr = '';
  primary.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk;
  });
  const exited = once(primary, 'exit');

  // Ready once both workers are: read through the reader while it is still alive.
  let seen = '';
  reader.stdout.setEncoding('utf8');
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`workers not ready; saw:\n${seen.slice(-2000)}`)),
      20_000,
    );
    reader.stdout.on('data', (chunk: string) => {
      seen += chunk;
      if ((seen.match(/"msg":"worker:ready"/g) ?? []).length >= 2) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
  reader.kill('SIGKILL');
  await once(reader, 'exit');

  const stopAt = Date.now();
  primary.kill('SIGTERM');
  const [code, signal] = (await exited) as [number | null, NodeJS.Signals | null];
  const elapsed = Date.now() - stopAt;
  assert.deepEqual({ code, signal }, { code: 0, signal: null }, `stderr:\n${stderr}`);
  assert.ok(elapsed < grace, `stopped in ${elapsed} ms, within grace (${grace} ms)`);
  assert.doesNotMatch(stderr, /EPIPE/);
  // The workers' own cleanup ran to the end although their console.log calls failed.
  assert.equal(readdirSync(markers).length, 2);
});
