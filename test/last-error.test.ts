import assert from 'node:assert/strict';
import { test } from 'node:test';
import { renderStatus, type StatusDocument } from '../lib/cli/status-table.js';
import type { ClusterStatus } from '../lib/common/cluster-status.js';
import { pingResult } from '../lib/worker/ping-handler.js';

const longMessage =
  'connect ECONNREFUSED 10.0.0.7:5672 while attaching the receiver for /amq/queue/katello_candlepin_events (attempt 12, next in 30 s)';

test('cluster-steward status prints the last error whole, with its name and code, under the table', () => {
  const now = Date.now();
  const document: StatusDocument = {
    pid: 100,
    at: now,
    uptime: 60_000,
    stopping: false,
    workers: [],
    services: {
      role: 'sibling',
      pid: 101,
      at: now,
      services: [
        {
          name: 'candlepin',
          state: 'backoff',
          since: now - 5000,
          restarts: 12,
          processed: 0,
          failed: 0,
          deadLettered: 0,
          queueDepth: null,
          lagMs: null,
          leader: null,
          lastError: { name: 'Error', code: 'ECONNREFUSED', message: longMessage },
        },
      ],
    },
  };
  const text = renderStatus(document);
  assert.ok(text.includes(`candlepin: Error [ECONNREFUSED]: ${longMessage}`), text);
  const row = text.split('\n').find((line) => line.trimStart().startsWith('candlepin '))!;
  assert.ok(row.includes('…'), 'the cell is shortened');
});

test('the ping body names the error and its code, with the whole message and no stack', () => {
  const status = {
    services: [
      {
        name: 'candlepin',
        state: 'backoff',
        lastError: { name: 'Error', code: 'ECONNREFUSED', message: longMessage, stack: 'Error: ...\n at x' },
      },
    ],
    healthy: false,
  } as unknown as ClusterStatus;
  const { statusCode, body } = pingResult({ getStatus: () => status });
  assert.equal(statusCode, 503);
  assert.equal(body.services[0]!.lastError, `Error [ECONNREFUSED]: ${longMessage}`);
});
