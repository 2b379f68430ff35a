import assert from 'node:assert/strict';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { after, test } from 'node:test';
import type { Connection, Receiver } from 'rhea';
import { BROKER, declareQueue, deleteQueues, uniqueQueue } from './helpers/amqp.js';

// lib/listeners/amqp reaches parts of rhea its typings do not declare (undecodable.ts, link-session.ts,
// link-consumer.ts). These tests name each of them, so an upgrade that moves one fails here, by name,
// instead of as a lost message in production.

const require = createRequire(import.meta.url);
const rhea = require('rhea') as typeof import('rhea');
const rheaDir = path.dirname(require.resolve('rhea/package.json'));
const rheaSource = (file: string) => readFileSync(path.join(rheaDir, 'lib', file), 'utf8');

/** The rhea versions whose internals the listener was checked against. */
const VERIFIED_RHEA_VERSIONS = ['3.0.5'];

const queues: string[] = [];
after(() => deleteQueues(...queues));

async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no ${what} within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

test('rhea is pinned to an exact version whose internals were verified, and that version is installed', () => {
  const manifest = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
    dependencies?: Record<string, string>;
    peerDependencies?: Record<string, string>;
    devDependencies?: Record<string, string>;
  };
  const declared =
    manifest.dependencies?.rhea ?? manifest.peerDependencies?.rhea ?? manifest.devDependencies?.rhea;
  assert.match(declared ?? '', /^\d+\.\d+\.\d+$/, `package.json pins rhea exactly (found ${declared})`);
  assert.ok(VERIFIED_RHEA_VERSIONS.includes(declared!), `rhea ${declared} was not verified`);
  const installed = (require('rhea/package.json') as { version: string }).version;
  assert.equal(installed, declared, 'the installed rhea is the pinned one');
});

test('rhea sources still hold the behaviour the listener works around', () => {
  const session = rheaSource('session.js');
  // link-consumer.ts #flushDispositions: consecutive ids merge into one disposition range, outcomes are
  // compared only once a range holds two deliveries.
  assert.match(session, /function write_dispositions\(deliveries\)/);
  assert.match(
    session,
    /first !== last && !message\.are_outcomes_equivalent\(last\.state, delivery\.state\)/,
  );
  assert.match(session, /Incoming\.prototype\.process = function \(session\)/);
  // undecodable.ts: a multi-frame delivery lives in `receiver._incomplete` until its last frame.
  assert.match(session, /receiver\._incomplete = current;/);
  assert.match(session, /Incoming\.prototype\.on_transfer = function\(frame, receiver\)/);
  assert.match(session, /CircularBuffer\.prototype\.get_tail = function/);
  // link-session.ts connectionOptions: Nagle is turned off by the `tcp_no_delay` connection option when
  // the socket is set up (default off there); only `connection.attach_receiver` defaults it on.
  const connection = rheaSource('connection.js');
  assert.match(
    connection,
    /Connection\.prototype\.init = function \(socket\) \{\s+this\.socket = socket;\s+if \(this\.get_option\('tcp_no_delay', false\) && this\.socket\.setNoDelay\) \{\s+this\.socket\.setNoDelay\(true\);/,
  );
  // test/amqp-credit.test.ts and bench/amqp.ts count frames and deliveries through these modules.
  const frames = require('rhea/lib/frames.js') as Record<string, unknown>;
  assert.equal(typeof frames.flow, 'function', 'frames.flow(fields)');
  assert.equal(typeof frames.disposition, 'function', 'frames.disposition(fields)');
  assert.match(
    session,
    /frames\.disposition\(\{'role' : first\.link\.is_receiver\(\), 'first' : first\.id, 'last' : last\.id/,
  );
  const { Receiver } = require('rhea/lib/link.js') as { Receiver?: { prototype?: Record<string, unknown> } };
  assert.equal(
    typeof Receiver?.prototype?.dispatch,
    'function',
    'Receiver.prototype.dispatch(name, context)',
  );
  assert.match(session, /receiver\.delivery_count\+\+;\s+var msgctxt[^\n]+\s+receiver\.dispatch\('message'/);
});

test('the rhea objects of a live connection, session and receiver carry the members the listener reaches', async () => {
  const queue = uniqueQueue('rhea-internals');
  queues.push(queue);
  await declareQueue(queue);
  const container = rhea.create_container({ id: `steward-rhea-internals-${queue}` });
  const connection: Connection = container.connect({ ...BROKER, reconnect: false });
  try {
    await within(once(connection, 'connection_open'), 30_000, 'connection_open');
    const receiver: Receiver = connection.open_receiver({ source: { address: `/amq/queue/${queue}` } });
    await within(once(receiver, 'receiver_open'), 30_000, 'receiver_open');

    // link-session.ts abortSocket
    const internalConnection = connection as unknown as Record<string, unknown>;
    assert.ok(internalConnection.socket, 'connection.socket is set while open');
    assert.equal(typeof internalConnection.abort_socket, 'function', 'connection.abort_socket()');
    // link-session.ts watchAvailable, undecodable.ts catchUndecodable
    const link = receiver as unknown as Record<string, unknown>;
    assert.equal(typeof link.on_flow, 'function', 'receiver.on_flow(frame)');
    assert.equal(typeof link.dispatch, 'function', 'receiver.dispatch(name, context)');
    assert.equal(link._incomplete, undefined, 'receiver._incomplete is empty between deliveries');
    // undecodable.ts and link-consumer.ts #flushDispositions
    const incoming = (receiver.session as unknown as { incoming?: Record<string, unknown> }).incoming;
    assert.ok(incoming, 'session.incoming');
    assert.equal(typeof incoming.on_transfer, 'function', 'session.incoming.on_transfer(frame, link)');
    assert.equal(typeof incoming.process, 'function', 'session.incoming.process(session)');
    const deliveries = incoming.deliveries as { get_tail?: unknown } | undefined;
    assert.equal(typeof deliveries?.get_tail, 'function', 'session.incoming.deliveries.get_tail()');
  } finally {
    const closed = once(connection, 'connection_close');
    connection.close();
    await within(closed, 30_000, 'connection_close').catch(() => undefined);
  }
});
