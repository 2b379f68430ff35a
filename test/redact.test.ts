import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import pino from 'pino';
import { createLogger } from '../lib/common/logger.js';
import { isLoopbackHost } from '../lib/common/loopback.js';
import { REDACTED, redactDeep, redactText, registerSecret } from '../lib/common/redact.js';

const SECRET = 'Zq9-s3cr3t-Xv';

/** Every shape a secret arrives in as text, with what must remain readable around it. */
const TEXT_SHAPES: Array<[string, string]> = [
  [`cannot reach postgres://user:${SECRET}@db:5432/x`, 'cannot reach postgres://user:***@db:5432/x'],
  [`amqps://guest:${SECRET}@broker`, 'amqps://guest:***@broker'],
  [`host=db password=${SECRET} user=app`, 'host=db password=*** user=app'],
  [`password='${SECRET} with spaces' sslmode=require`, "password='***' sslmode=require"],
  [`PGPASSWORD=${SECRET} psql`, 'PGPASSWORD=*** psql'],
  [`client_secret: ${SECRET}`, 'client_secret: ***'],
  [`bad config {"password":"${SECRET}","user":"a"}`, 'bad config {"password":"***","user":"a"}'],
  [`{"apiKey": "${SECRET}"}`, '{"apiKey": "***"}'],
  [`{"pin_token":12345}`, '{"pin_token":"***"}'],
  [`{"msg":"{\\"secret\\":\\"${SECRET}\\"}"}`, '{"msg":"{\\"secret\\":\\"***\\"}"}'],
  [`GET /hook?api_key=${SECRET}&page=2`, 'GET /hook?api_key=***&page=2'],
  [`Authorization: Bearer ${SECRET}`, 'Authorization: ***'],
  [`sent header Bearer ${SECRET}`, 'sent header Bearer ***'],
  [`Basic ${Buffer.from(`u:${SECRET}`).toString('base64')}`, 'Basic ***'],
];

test('free text: URL credentials, key=value, JSON (also escaped inside a string), Bearer and Basic', () => {
  for (const [input, expected] of TEXT_SHAPES) {
    const redacted = redactText(input);
    assert.equal(redacted, expected, input);
    assert.equal(redactText(redacted), redacted, `idempotent: ${input}`);
  }
});

test('text without secrets is left alone', () => {
  for (const text of [
    'control:listening',
    'https://example.com:8443/path and user@example.com',
    'cwd PWD=/home/app at 12:00',
    'tokenCount=3 secretary: Ann',
    'A valid bearer token is required',
    'amqp://broker:5672/vhost',
  ])
    assert.equal(redactText(text), text);
});

test('a registered literal secret is redacted wherever it appears', () => {
  const token = 'registered-control-token-0123456789';
  assert.equal(redactText(`echo ${token}!`), `echo ${token}!`, 'not a secret before it is registered');
  registerSecret(token);
  assert.equal(redactText(`echo ${token}!`), 'echo ***!');
  registerSecret('short');
  assert.equal(redactText('a short word'), 'a short word', 'short values are not registered');
});

test('structures: secret-named fields masked at any depth, strings redacted, JSON of URL objects too', () => {
  const input = {
    config: { db: { password: SECRET, host: 'db' }, auth: { user: 'a', pass: SECRET } },
    headers: { authorization: `Bearer ${SECRET}`, 'x-api-key': SECRET },
    accessToken: SECRET,
    list: [`postgres://u:${SECRET}@h/x`],
    url: new URL(`https://u:${SECRET}@example.com/`),
    tokenCount: 3,
    map: new Map([['credentials', { user: 'u', key: SECRET }]]),
  };
  const output = redactDeep(input);
  assert.ok(!JSON.stringify(output).includes(SECRET), JSON.stringify(output));
  assert.equal(output.config.db.host, 'db');
  assert.equal(output.config.db.password, REDACTED);
  assert.equal(output.tokenCount, 3, 'names ending elsewhere stay readable');
  assert.equal(output.url as unknown as string, 'https://u:***@example.com/');
  assert.equal(input.config.db.password, SECRET, 'the input is not modified');
});

test('errors: message, stack, cause chain, AggregateError members and own fields; the prototype stays', () => {
  const cause = new Error(`inner {"password":"${SECRET}"}`);
  const error = new TypeError(`outer postgres://u:${SECRET}@h/x`, { cause });
  Object.assign(error, { connectionString: `postgres://u:${SECRET}@h/x`, secret: SECRET });
  const aggregate = new AggregateError([error], `all failed: token=${SECRET}`);
  const redacted = redactDeep(aggregate);
  assert.ok(redacted instanceof AggregateError);
  const member = redacted.errors[0] as TypeError & { cause: Error; secret: string };
  assert.ok(member instanceof TypeError);
  for (const text of [redacted.message, redacted.stack, member.message, member.stack, member.cause.message])
    assert.ok(text && !text.includes(SECRET), text);
  assert.equal(member.secret, REDACTED);
  assert.match(member.message, /postgres:\/\/u:\*\*\*@h\/x/);
});

test('cycles and depth do not hang or throw', () => {
  const cyclic: Record<string, unknown> = { password: SECRET };
  cyclic.self = cyclic;
  const output = redactDeep(cyclic);
  assert.equal(output.password, REDACTED);
  assert.equal(output.self, '[Circular or too deep]');
});

/** A pino logger writing into an array of parsed lines. */
function capture(options: pino.LoggerOptions = {}): { logger: pino.Logger; lines: string[] } {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk, _encoding, done) {
      lines.push(String(chunk));
      done();
    },
  });
  return { logger: pino(options, stream), lines };
}

function logEveryShape(logger: pino.Logger): void {
  const child = logger.child({ service: 'db', url: `postgres://u:${SECRET}@h/x` });
  child.error(
    { err: new Error(`cannot reach postgres://u:${SECRET}@db/x`, { cause: new Error(`token=${SECRET}`) }) },
    'service:backoff',
  );
  child.info(
    { config: { password: SECRET, nested: { auth: { pass: SECRET } } } },
    `connecting with password=${SECRET}`,
  );
  child.warn(new Error(`alone {"secret":"${SECRET}"}`));
  child.child({ deeper: true }).info(`grandchild amqp://g:${SECRET}@broker`);
}

test("the user's own pino logger: no line carries the secret, its configuration is kept", () => {
  registerSecret(undefined);
  const { logger, lines } = capture({ base: { app: 'mine' }, messageKey: 'message' });
  logEveryShape(createLogger(logger, { role: 'primary' }));
  assert.equal(lines.length, 4);
  for (const line of lines) {
    assert.ok(!line.includes(SECRET), line);
    const parsed = JSON.parse(line) as Record<string, unknown>;
    assert.equal(parsed.app, 'mine');
    assert.equal(parsed.role, 'primary');
    assert.equal(typeof parsed.message, 'string', 'the user messageKey stays');
  }
  assert.match(lines[0]!, /"type":"Error"/, 'pino still serialises the error as one');
  assert.match(lines[0]!, /postgres:\/\/u:\*\*\*@db\/x/);
});

test('a pino.multistream destination keeps working behind the redaction', () => {
  const received: string[] = [];
  const sink = new Writable({
    write(chunk, _encoding, done) {
      received.push(String(chunk));
      done();
    },
  });
  const logger = pino({}, pino.multistream([{ stream: sink, level: 'info' }]));
  logEveryShape(createLogger(logger, { role: 'worker' }));
  assert.equal(received.length, 4);
  for (const line of received) assert.ok(!line.includes(SECRET), line);
});

test('a logger that is not pino gets its arguments redacted', () => {
  const calls: unknown[][] = [];
  const fake = {
    child() {
      return fake;
    },
    info: (...args: unknown[]) => calls.push(args),
  };
  const logger = createLogger(fake as unknown as pino.Logger, {});
  logger.info(
    { password: SECRET, err: new Error(`x://a:${SECRET}@b`) },
    `msg ${SECRET}`.replace(SECRET, `token=${SECRET}`),
  );
  assert.equal(calls.length, 1);
  assert.ok(!JSON.stringify(calls[0]).includes(SECRET));
  assert.ok(!String((calls[0]![0] as { err: Error }).err.message).includes(SECRET));
});

test('loopback hosts', () => {
  for (const host of [
    '127.0.0.1',
    '127.1.2.3',
    'localhost',
    '::1',
    '[::1]',
    '::ffff:127.0.0.1',
    '0:0:0:0:0:0:0:1',
  ])
    assert.equal(isLoopbackHost(host), true, host);
  for (const host of ['0.0.0.0', '::', '10.0.0.5', 'example.com', '::ffff:10.0.0.1', '128.0.0.1'])
    assert.equal(isLoopbackHost(host), false, host);
});
