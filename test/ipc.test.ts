import assert from 'node:assert/strict';
import { type ChildProcess, fork } from 'node:child_process';
import { once } from 'node:events';
import { after, test } from 'node:test';
import { IpcChannel } from '../lib/common/ipc.js';
import { droppedMessages, inspectMessage } from '../lib/common/messages.js';
import { StewardError } from '../lib/errors.js';
import { fixturesDir } from './helpers/process.js';

const children: ChildProcess[] = [];
after(() => {
  for (const child of children) child.kill('SIGKILL');
});

function startPeer(): { child: ChildProcess; channel: IpcChannel } {
  const child = fork(`${fixturesDir}ipc-peer.js`, { stdio: 'ignore' });
  children.push(child);
  return { child, channel: new IpcChannel(child, { peerName: 'test peer' }) };
}

test('request/reply is correlated by sequence number', async () => {
  const { child, channel } = startPeer();
  const replies = await Promise.all([1, 2, 3].map(() => channel.request('metrics:collect', {}, 5_000)));
  for (const reply of replies) assert.equal((reply as unknown as { pid: number }).pid, child.pid);
  child.kill();
});

test('a request the peer never answers rejects with STEWARD_ERR_IPC_TIMEOUT', async () => {
  const { child, channel } = startPeer();
  await assert.rejects(
    channel.request('worker:drain', { timeout: 1, reason: 'test' }, 200),
    (error: unknown) => {
      assert.ok(error instanceof StewardError);
      assert.equal(error.code, 'STEWARD_ERR_IPC_TIMEOUT');
      assert.match(error.message, /test peer did not answer worker:drain within 200 ms/);
      return true;
    },
  );
  child.kill();
});

test('requests of one timeout length each expire at their own time, and a settled channel holds no timer', {
  timeout: 10_000,
}, async () => {
  const { child, channel } = startPeer();
  await channel.request('metrics:collect', {}, 5_000); // the peer is up
  const timersBefore = process.getActiveResourcesInfo().filter((kind) => kind === 'Timeout').length;
  const expiry = (sentAt: number) => (error: unknown) => {
    assert.equal((error as StewardError).code, 'STEWARD_ERR_IPC_TIMEOUT');
    return performance.now() - sentAt;
  };
  const firstSent = performance.now();
  const first = channel.request('worker:drain', { timeout: 1, reason: 'test' }, 300).then(() => {
    throw new Error('the peer never answers worker:drain');
  }, expiry(firstSent));
  // The second is sent while the first waits: it must not expire with the first.
  await new Promise((resolve) => setTimeout(resolve, 150));
  const secondSent = performance.now();
  const second = channel.request('worker:drain', { timeout: 1, reason: 'test' }, 300).then(() => {
    throw new Error('the peer never answers worker:drain');
  }, expiry(secondSent));
  const answered = channel.request('metrics:collect', {}, 300);
  assert.equal(((await answered) as unknown as { pid: number }).pid, child.pid);
  const [firstWaited, secondWaited] = await Promise.all([first, second]);
  assert.ok(firstWaited >= 300 && firstWaited < 2_000, `first expired after ${firstWaited} ms`);
  assert.ok(secondWaited >= 300 && secondWaited < 2_000, `second expired after ${secondWaited} ms`);
  const timersAfter = process.getActiveResourcesInfo().filter((kind) => kind === 'Timeout').length;
  assert.equal(timersAfter, timersBefore, 'the channel still holds a timer with nothing pending');
  child.kill();
});

test('a pending request rejects as soon as the peer exits', async () => {
  const { channel } = startPeer();
  await channel.request('metrics:collect', {}, 5_000); // the peer is up
  const pending = channel.request('worker:drain', { timeout: 1, reason: 'test' }, 60_000);
  const started = Date.now();
  channel.send('services:stop', { timeout: 0 });
  await assert.rejects(
    pending,
    (error: unknown) => (error as StewardError).code === 'STEWARD_ERR_IPC_PEER_GONE',
  );
  assert.ok(Date.now() - started < 5_000, 'rejected on exit, not on the 60 s timeout');
  assert.equal(channel.closed, true);
  await assert.rejects(channel.request('metrics:collect', {}, 1_000), /gone/);
});

test('malformed, unknown and spoofed messages are dropped and counted; application messages pass', async () => {
  const { child, channel } = startPeer();
  const before = { ...droppedMessages };
  const heartbeats: unknown[] = [];
  channel.on('worker:heartbeat', (message) => heartbeats.push(message));
  const echoed = once(child, 'message', { signal: AbortSignal.timeout(5_000) });
  child.send({ app: 'echo', payload: { nested: [1, 2] } });
  assert.deepEqual((await echoed)[0], { app: 'echoed', payload: { nested: [1, 2] } });
  const garbageDone = new Promise<void>((resolve) =>
    child.on('message', (message: { app?: string }) => message.app === 'garbage-sent' && resolve()),
  );
  child.send({ app: 'send-garbage' });
  await garbageDone;
  assert.equal(heartbeats.length, 0, 'the invalid heartbeat never reached a listener');
  assert.equal(droppedMessages.malformed - before.malformed, 1);
  assert.equal(droppedMessages.unknown_type - before.unknown_type, 1);
  assert.equal(droppedMessages.unexpected_reply - before.unexpected_reply, 1);
  child.kill();
});

test('message inspection tells ours from the application’s', () => {
  assert.deepEqual(inspectMessage({ cmd: 'NODE_CLUSTER' }), { kind: 'foreign' });
  assert.deepEqual(inspectMessage('text'), { kind: 'foreign' });
  assert.deepEqual(inspectMessage({ ns: 'cluster-steward', type: 'worker:ready', addresses: 'x' }), {
    kind: 'invalid',
    reason: 'malformed',
  });
  const huge = { ns: 'cluster-steward', type: 'worker:recycle-request', reason: 'x'.repeat(10_000) };
  assert.equal(inspectMessage(huge).kind, 'invalid');
  const valid = inspectMessage({ ns: 'cluster-steward', type: 'worker:recycle-request', reason: 'manual' });
  assert.equal(valid.kind, 'valid');
});

test("a worker's relayed log line is checked like every message: its level, fields and message", () => {
  const line = (payload: Record<string, unknown>) =>
    inspectMessage({ ns: 'cluster-steward', type: 'worker:log', ...payload }).kind;
  assert.equal(line({ level: 'info', fields: { drainMs: 3 }, msg: 'worker:drain:done' }), 'valid');
  assert.equal(line({ level: 'fatal', fields: {}, msg: 'x' }), 'invalid', "only the agent's levels");
  assert.equal(line({ level: 'warn', fields: [], msg: 'x' }), 'invalid');
  assert.equal(line({ level: 'warn', fields: null, msg: 'x' }), 'invalid');
  const many = Object.fromEntries(Array.from({ length: 33 }, (_, i) => [`f${i}`, i]));
  assert.equal(line({ level: 'warn', fields: many, msg: 'x' }), 'invalid');
  assert.equal(line({ level: 'error', fields: {}, msg: 'x'.repeat(257) }), 'invalid');
});
