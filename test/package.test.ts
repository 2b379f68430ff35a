import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import {
  accessSync,
  constants,
  cpSync,
  mkdirSync,
  mkdtempSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { get } from './helpers/http.js';
import { adminQuery, PG_BASE, randomSuffix } from './helpers/pg.js';
import { event, freePort, type Spawned, spawnFixture, until } from './helpers/process.js';

// What a new user does: `npm pack`, install the tarball into a fresh project next to `pg`, write an app
// as the docs show (ESM, CommonJS, or the CLI) and run it from there.
const run = promisify(execFile);
const repository = fileURLToPath(new URL('..', import.meta.url));
const work = mkdtempSync(join(tmpdir(), 'steward-package-'));
const app = join(work, 'app');
const suffix = randomSuffix();
const schemas: string[] = [];
const spawned: Spawned[] = [];
let tarball = '';

after(async () => {
  for (const fixture of spawned) fixture.killAll();
  for (const schema of schemas) await adminQuery(`DROP SCHEMA IF EXISTS ${schema} CASCADE`).catch(() => {});
  rmSync(work, { recursive: true, force: true });
});

before(async () => {
  // A checkout without `dist/` (as after `npm ci`): the tarball has a build only if packing makes one.
  const source = join(work, 'source');
  const { stdout } = await run('git', ['ls-files', '-co', '--exclude-standard'], { cwd: repository });
  for (const file of stdout.split('\n').filter(Boolean)) {
    if (file.startsWith('dist/')) continue;
    mkdirSync(dirname(join(source, file)), { recursive: true });
    cpSync(join(repository, file), join(source, file));
  }
  symlinkSync(join(repository, 'node_modules'), join(source, 'node_modules'));
  const packed = await run('npm', ['pack', '--json', '--pack-destination', work], {
    cwd: source,
    maxBuffer: 64 * 1024 * 1024,
  });
  const [manifest] = JSON.parse(packed.stdout.slice(packed.stdout.indexOf('['))) as Array<{
    filename: string;
    files: Array<{ path: string }>;
  }>;
  tarball = join(work, manifest!.filename);
  packedFiles = manifest!.files.map((file) => file.path);

  mkdirSync(app);
  // `npm init -y` writes "type": "commonjs": the CommonJS app runs as most throng apps do.
  await run('npm', ['init', '-y'], { cwd: app });
  // TypeScript users add the type packages of what they import, as for any JavaScript dependency.
  const packages = [tarball, 'pg', '@types/pg', '@types/node@20'];
  await run('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', ...packages], {
    cwd: app,
    maxBuffer: 64 * 1024 * 1024,
  });
  writeAppFiles();
});

let packedFiles: string[] = [];

test('the tarball holds the build, the CLI, the LICENSE and the examples the docs link to', () => {
  for (const file of ['dist/index.js', 'dist/index.d.ts', 'dist/cli/main.js', 'dist/throng.js', 'LICENSE'])
    assert.ok(packedFiles.includes(file), `${file} is packed`);
  assert.ok(packedFiles.some((file) => file.startsWith('examples/demo/')));
  accessSync(join(app, 'node_modules/.bin/cluster-steward'), constants.X_OK);
});

/** A services module with one PostgreSQL event queue in its own schema. */
function servicesModule(kind: 'esm' | 'cjs', schema: string): string {
  const body = `defineServices(() => [
  pgEventQueue({
    name: 'orders',
    connectionString: process.env.DATABASE_URL,
    schema: '${schema}',
    handlers: { 'order.placed': async () => {} },
  }),
])`;
  return kind === 'esm'
    ? `import { defineServices } from 'cluster-steward/services';
import { pgEventQueue } from 'cluster-steward/pg';
export default ${body};\n`
    : `const { defineServices } = require('cluster-steward/services');
const { pgEventQueue } = require('cluster-steward/pg');
module.exports = ${body};\n`;
}

const handler = `(request, response) => {
  if (request.url === '/ping') return ping(request, response);
  response.end(String(process.pid));
}`;

function writeAppFiles(): void {
  for (const kind of ['esm', 'cjs', 'cli']) schemas.push(`pkg_${kind}_${suffix}`);
  writeFileSync(join(app, 'services.mjs'), servicesModule('esm', schemas[0]!));
  writeFileSync(join(app, 'services.js'), servicesModule('cjs', schemas[1]!));
  writeFileSync(join(app, 'cli-services.js'), servicesModule('cjs', schemas[2]!));
  writeFileSync(
    join(app, 'esm-app.mjs'),
    `import http from 'node:http';
import { httpPingHandler, steward } from 'cluster-steward';

const ping = httpPingHandler();
await steward({
  workers: 2,
  services: new URL('./services.mjs', import.meta.url),
  worker: () => http.createServer(${handler}).listen(Number(process.env.PORT), '127.0.0.1'),
});
`,
  );
  writeFileSync(
    join(app, 'cjs-app.js'),
    `const http = require('node:http');
const path = require('node:path');
const { httpPingHandler, steward } = require('cluster-steward');

const ping = httpPingHandler();
steward({
  workers: 2,
  services: path.join(__dirname, 'services.js'),
  worker: () => http.createServer(${handler}).listen(Number(process.env.PORT), '127.0.0.1'),
});
`,
  );
  writeFileSync(
    join(app, 'server.js'),
    `const http = require('node:http');
const { httpPingHandler } = require('cluster-steward');

const ping = httpPingHandler();
module.exports = () => http.createServer(${handler}).listen(Number(process.env.PORT), '127.0.0.1');
`,
  );
  writeFileSync(
    join(app, 'typed.mts'),
    `import http from 'node:http';
import { steward, type WorkerContext, type StewardOptions } from 'cluster-steward';
import { defineServices } from 'cluster-steward/services';
import { pgEventQueue } from 'cluster-steward/pg';
import { forThrong } from 'cluster-steward/throng';

export const services = defineServices(() => [
  pgEventQueue({ name: 'orders', connectionString: 'postgres://localhost/app', handlers: {} }),
]);
const options: StewardOptions = {
  workers: process.env.WEB_CONCURRENCY ?? 2,
  worker: (_id: number, _disconnect: () => void, ctx: WorkerContext) => {
    ctx.logger.info('starting');
    return http.createServer().listen(3000);
  },
};
export const throngOptions = forThrong(options);
export const supervisor = await steward(options);
`,
  );
  writeFileSync(
    join(app, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: {
        module: 'nodenext',
        moduleResolution: 'nodenext',
        target: 'es2022',
        strict: true,
        noEmit: true,
        skipLibCheck: false,
        types: ['node'],
      },
      files: ['typed.mts'],
    }),
  );
}

async function serveAndStop(fixture: Spawned, port: number): Promise<void> {
  spawned.push(fixture);
  await fixture.waitForLogs(event('worker:ready'), 2, 30_000);
  const pids = new Set<string>();
  let lastPing = '';
  await until(
    async () => {
      const ping = await get(`http://127.0.0.1:${port}/ping`);
      lastPing = `${ping.status} ${ping.body}`;
      if (ping.status !== 200) return false;
      // Two requests per round: round-robin would otherwise send every `/` to the same worker.
      for (let i = 0; i < 2; i++) pids.add((await get(`http://127.0.0.1:${port}/`)).body);
      return pids.size === 2;
    },
    30_000,
    '/ping 200 (the PostgreSQL service runs) and answers from both workers',
  ).catch((error: Error) => {
    const logs = fixture.logs.slice(-20).map((line) => JSON.stringify(line));
    throw new Error(
      `${error.message}\nlast ping: ${lastPing}\n${logs.join('\n')}\n${fixture.stderr.join('')}`,
    );
  });
  assert.ok(fixture.logs.some(event('services:running')));
  fixture.child.kill('SIGTERM');
  assert.deepEqual(await fixture.exited, { code: 0, signal: null }, fixture.stderr.join(''));
}

const environment = (port: number) => ({
  PORT: String(port),
  DATABASE_URL: PG_BASE,
  STEWARD_LOG_LEVEL: 'info',
});

test('an ES module app from the installed package serves from 2 workers with its services', async () => {
  const port = await freePort();
  await serveAndStop(spawnFixture(join(app, 'esm-app.mjs'), environment(port), [], { cwd: app }), port);
});

test('a CommonJS app (require, path.join(__dirname, ...) services module) serves and exits 0', async () => {
  const port = await freePort();
  await serveAndStop(spawnFixture(join(app, 'cjs-app.js'), environment(port), [], { cwd: app }), port);
});

test('the CLI from node_modules/.bin runs a CommonJS server module with services', async () => {
  const port = await freePort();
  const cli = join(app, 'node_modules/.bin/cluster-steward');
  const args = ['run', './server.js', '--workers', '2', '--services', './cli-services.js'];
  await serveAndStop(spawnFixture(cli, environment(port), args, { cwd: app }), port);
});

test('a TypeScript app type-checks against the package (nodenext, strict)', async () => {
  const tsc = join(repository, 'node_modules/typescript/bin/tsc');
  const result = await run(process.execPath, [tsc, '-p', join(app, 'tsconfig.json')], { cwd: app }).catch(
    (error: { stdout: string; stderr: string }) => error,
  );
  assert.equal(result.stdout.trim(), '', 'no type errors');
});
