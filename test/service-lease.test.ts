import assert from 'node:assert/strict';
import { test } from 'node:test';
import pino from 'pino';
import type { Lease, LeaseStrategy } from '../lib/services/lease.js';
import { ServiceHost } from '../lib/services/service-host.js';
import { resolveServices } from '../lib/services/service-options.js';
import type { Service, ServiceContext } from '../lib/services/types.js';
import { until } from './helpers/process.js';

// The service runner knows leadership only as a LeaseStrategy. These tests drive a real ServiceHost with
// a strategy whose leases the test grants and revokes; the PostgreSQL strategy has its own tests
// (pg-singleton*.test.ts).

/** Leadership handed out by the test: `grant()` resolves the waiting acquisition, `revoke()` loses it. */
function manualLeases() {
  const waiting: Array<(lease: Lease) => void> = [];
  const held: Array<{ lost: AbortController; released: boolean }> = [];
  const strategy: LeaseStrategy = (_singleton, _logger, signal) =>
    new Promise<Lease | null>((resolve) => {
      signal.addEventListener('abort', () => resolve(null), { once: true });
      waiting.push(resolve);
    });
  return {
    strategy,
    held,
    waiting: () => waiting.length,
    grant(epoch: string) {
      const lost = new AbortController();
      const entry = { lost, released: false };
      held.push(entry);
      waiting.shift()!({
        lost: lost.signal,
        fencing: { key: 'lease-test', epoch, schema: 'public', table: 'epochs' },
        release: async () => {
          entry.released = true;
        },
      });
    },
    revoke() {
      held.at(-1)!.lost.abort(new Error('lease revoked by the test'));
    },
  };
}

function singleton(runs: Array<{ epoch: string | undefined; stopped: boolean }>): Service {
  return {
    name: 'lease-test',
    singleton: { connectionString: 'postgres://127.0.0.1/unused', key: 'lease-test' },
    async run(ctx: ServiceContext) {
      const entry = { epoch: ctx.fencing?.epoch, stopped: false };
      runs.push(entry);
      ctx.ready();
      await new Promise((resolve) => ctx.signal.addEventListener('abort', resolve, { once: true }));
      entry.stopped = true;
    },
  };
}

test('a singleton runs only while it holds a lease from the injected strategy, and waits again when it is lost', async () => {
  const leases = manualLeases();
  const runs: Array<{ epoch: string | undefined; stopped: boolean }> = [];
  const host = new ServiceHost(resolveServices([singleton(runs)]), {
    role: 'standalone',
    logger: pino({ level: 'silent' }),
    guardProcess: false,
    leases: leases.strategy,
  });
  const state = () => host.snapshot().services[0]!;
  host.start();
  try {
    await until(() => leases.waiting() === 1, 10_000, 'the runner asks for a lease');
    assert.equal(state().state, 'standby');
    assert.equal(state().leader, false);
    assert.equal(runs.length, 0, 'nothing runs without the lease');

    leases.grant('1');
    await until(() => state().state === 'running', 10_000, 'running once the lease is held');
    assert.equal(state().leader, true);
    assert.deepEqual(runs, [{ epoch: '1', stopped: false }], 'the run gets the fencing token of its lease');

    leases.revoke();
    await until(() => runs[0]!.stopped, 10_000, 'the run stops when the lease is lost');
    assert.equal(leases.held[0]!.released, true, 'a lost lease is released');
    await until(() => leases.waiting() === 1, 10_000, 'the runner asks for a lease again');
    assert.equal(state().leader, false);

    leases.grant('2');
    await until(
      () => runs.length === 2 && state().state === 'running',
      10_000,
      'running under the new lease',
    );
    assert.equal(runs[1]!.epoch, '2');
  } finally {
    assert.equal(await host.stop(10_000), true, 'the host stops cleanly');
  }
  assert.equal(leases.held[1]!.released, true, 'stopping the host releases the lease');
});

test('a host given a singleton but no lease strategy refuses to start it', () => {
  assert.throws(
    () =>
      new ServiceHost(resolveServices([singleton([])]), {
        role: 'standalone',
        logger: pino({ level: 'silent' }),
        guardProcess: false,
      }),
    /Service "lease-test" is a singleton but its host was given no lease strategy/,
  );
});
