import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { PG_BASE } from './helpers/pg.js';

const run = promisify(execFile);
const driver = fileURLToPath(new URL('../lib/listeners/pg/pg-driver.ts', import.meta.url));

/**
 * Run in a fresh process: what `pg-driver` loads, whether `Response` is what it was, whether pg imported
 * by an application afterwards is the same instance, and whether a query still goes through.
 */
const probe = `
const undiciModules = () => process.moduleLoadList.filter((m) => /undici|_http_client|http2|_tls_wrap|zlib/.test(m));
const loadedBefore = undiciModules();
const responseBefore = Object.getOwnPropertyDescriptor(globalThis, 'Response');
const { Pool } = await import(${JSON.stringify(driver)});
const loadedByDriver = undiciModules().filter((m) => !loadedBefore.includes(m));
const responseAfter = Object.getOwnPropertyDescriptor(globalThis, 'Response');
const appPg = (await import('pg')).default;
const pool = new Pool({ connectionString: ${JSON.stringify(PG_BASE)}, max: 1 });
const { rows } = await pool.query('SELECT 41 + 1 AS answer');
await pool.end();
console.log(JSON.stringify({
  loadedBefore, loadedByDriver,
  sameDescriptor: responseBefore?.get === responseAfter?.get && responseBefore?.set === responseAfter?.set
    && responseBefore?.configurable === responseAfter?.configurable && responseBefore?.enumerable === responseAfter?.enumerable,
  responseIsClass: typeof Response === 'function',
  sharedInstance: appPg.Pool === Pool,
  answer: rows[0].answer,
}));
`;

test('pg loads without undici and its web modules, and still queries through node:net', async () => {
  const { stdout } = await run(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', probe], {
    cwd: fileURLToPath(new URL('..', import.meta.url)),
  });
  const seen = JSON.parse(stdout.trim().split('\n').at(-1)!);
  // The check means something only if nothing loaded these before the driver did.
  assert.deepEqual(seen.loadedBefore, []);
  assert.deepEqual(seen.loadedByDriver, [], 'pg-driver loaded web-platform modules');
  assert.equal(seen.sameDescriptor, true, 'the global Response was not given back as it was');
  assert.equal(seen.responseIsClass, true);
  assert.equal(seen.sharedInstance, true, "an application's `import pg from 'pg'` must share the instance");
  assert.equal(seen.answer, 42);
});
