// Secrets through every door, found at no exit: a password in every option that takes a URL, errors
// that quote it (connection failures, an option error, JSON in a message, a cause), careless logging in
// a worker and a service, a metric label, a service problem, the control token. Both placements, the
// default logger and the application's own pino; stdout, stderr, /status, /healthz, /metrics, ping.
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { get } from './helpers/http.js';
import { randomSuffix } from './helpers/pg.js';
import { event, type LogLine, type Spawned, spawnFixture } from './helpers/process.js';
import { freePort } from './helpers/services.js';

const SECRET = `S3cr3t-${randomSuffix()}-pw`;
const TOKEN = `control-${randomSuffix()}-0123456789abcdef`;
const auth = { authorization: `Bearer ${TOKEN}` };

const spawned: Spawned[] = [];
after(() => {
  for (const fixture of spawned) fixture.killAll();
});

/** The first crash of `service` (its `service:backoff` line) or failed reconnection (a LISTEN connection). */
const crashed = (service: string) => (line: LogLine) =>
  ['service:backoff', 'service:failed', 'pg:listen:reconnecting'].includes(line.msg ?? '') &&
  line.service === service;

function assertNoSecret(where: string, text: string): void {
  assert.ok(!text.includes(SECRET), `${where} holds the password:\n${excerpt(text, SECRET)}`);
  assert.ok(!text.includes(TOKEN), `${where} holds the control token:\n${excerpt(text, TOKEN)}`);
}

function excerpt(text: string, needle: string): string {
  const at = text.indexOf(needle);
  return text.slice(Math.max(0, at - 300), at + 100);
}

for (const placement of ['sibling', 'primary'] as const) {
  for (const logger of ['default', 'user'] as const) {
    test(`placement ${placement}, ${logger} logger: the password and the token reach no output`, async () => {
      const port = await freePort();
      const app = spawnFixture('secrets-app.js', {
        PORT: String(port),
        FIXTURE_SECRET: SECRET,
        FIXTURE_TOKEN: TOKEN,
        FIXTURE_PLACEMENT: placement,
        FIXTURE_USER_LOGGER: logger === 'user' ? '1' : '0',
      });
      spawned.push(app);
      const listening = await app.waitForLog(event('control:listening'), 20_000, 'control:listening');
      const control = `http://127.0.0.1:${listening.port as number}`;
      await app.waitForLog(event('worker:ready'), 20_000, 'worker:ready');
      // Every error path has been taken at least once.
      for (const service of ['amqp-secret', 'queue-secret', 'notify-secret', 'option-error', 'careless'])
        await app.waitForLog(crashed(service), 30_000, `a crash of ${service}`);

      const exits: Record<string, string> = {};
      for (const path of ['/status', '/healthz', '/metrics']) {
        const reply = await get(`${control}${path}`, { headers: auth });
        assert.ok(
          reply.status === 200 || (path === '/healthz' && reply.status === 503),
          `${path}: ${reply.status}`,
        );
        exits[path] = reply.body;
      }
      const ping = await get(`http://127.0.0.1:${port}/ping`);
      exits.ping = ping.body;
      // A client that sends the token in a query string and a bad Authorization header gets logged.
      await get(`${control}/nowhere?token=${TOKEN}`, { headers: { authorization: `Bearer ${SECRET}` } });

      app.child.kill('SIGTERM');
      await app.exited;
      exits.stdout = app.logs.map((line) => JSON.stringify(line)).join('\n');
      exits.stderr = app.stderr.join('');
      for (const [where, text] of Object.entries(exits)) assertNoSecret(where, text);

      // Redacted, not dropped: what surrounds the secret is still there to debug with.
      assert.match(
        exits['/metrics']!,
        /app_connections_total\{target="postgres:\/\/steward_nobody:\*\*\*@127\.0\.0\.1:5432\/test"/,
      );
      assert.match(exits['/status']!, /cannot reach postgres:\/\/steward_nobody:\*\*\*@/);
      assert.match(exits.ping!, /cannot reach postgres:\/\/steward_nobody:\*\*\*@/);
      assert.match(exits['/status']!, /"password\\":\\"\*\*\*\\"|"password":"\*\*\*"|password\\":\\"\*\*\*/);
      assert.match(exits.stdout, /amqp:\/\/guest:\*\*\*@127\.0\.0\.1:5672/);
      assert.match(exits.stdout, /worker cannot reach postgres:\/\/steward_nobody:\*\*\*@/);
      assert.ok(app.logs.some((line) => line.msg === 'service:backoff' && line.service === 'careless'));
      if (logger === 'user' && placement === 'primary') {
        // The case: the application's own pino in the primary, a service error quoting the URL.
        const backoff = app.logs.filter((line) => line.msg === 'service:backoff' && line.role === 'primary');
        assert.ok(backoff.length > 0, 'service:backoff logged by the primary');
      }
    });
  }
}

test('an option error whose received value carries a password exits without printing it', async () => {
  const app = spawnFixture('metrics-cluster.js', {
    FIXTURE_OPTIONS: JSON.stringify({ workers: `postgres://u:${SECRET}@db/x`, control: false }),
  });
  spawned.push(app);
  const { code } = await app.exited;
  assert.notEqual(code, 0);
  const stderr = app.stderr.join('');
  assert.match(stderr, /STEWARD_ERR_INVALID_OPTION/);
  assert.match(stderr, /postgres:\/\/u:\*\*\*@db\/x/);
  assertNoSecret('stderr', stderr);
  assertNoSecret('stdout', JSON.stringify(app.logs));
});
