import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Message } from 'rhea';
import {
  brokerProfiles,
  detectBroker,
  isFatalCondition,
  retryOutcomeFor,
} from '../lib/listeners/amqp/broker-profile.js';
import { CreditWindow } from '../lib/listeners/amqp/credit-window.js';
import { BoundedMap, DedupWindow, DeliveryCounter, messageIdOf } from '../lib/listeners/amqp/dedup-window.js';
import { resolveAmqpOptions } from '../lib/listeners/amqp/options.js';

const base = { name: 'orders', address: '/amq/queue/orders', handler: () => undefined };

function rejectsWith(input: unknown, code: string, message: RegExp): void {
  assert.throws(
    () => resolveAmqpOptions(input),
    (error: Error & { code?: string }) => error.code === code && message.test(error.message),
  );
}

test('defaults and URL parsing; the URL password is decoded and kept out of every message', () => {
  const resolved = resolveAmqpOptions({ ...base, url: 'amqps://svc:p%40ss@broker.example:5700' });
  assert.equal(resolved.host, 'broker.example');
  assert.equal(resolved.port, 5700);
  assert.equal(resolved.username, 'svc');
  assert.equal(resolved.password, 'p@ss');
  assert.deepEqual(resolved.tls, {});
  assert.equal(resolved.prefetch, 100);
  assert.equal(resolved.concurrency, 1);
  assert.equal(resolved.maxDeliveries, 5);
  assert.equal(resolveAmqpOptions({ ...base, tls: true }).port, 5671);
  assert.throws(
    () => resolveAmqpOptions({ ...base, url: 'http://u:secret-pw@host' }),
    (error: Error) => !error.message.includes('secret-pw') && /amqp:\/\/ or amqps:\/\//.test(error.message),
  );
});

test('every option is validated with a coded error naming option, range and value', () => {
  rejectsWith(
    { ...base, prefetch: 0 },
    'STEWARD_ERR_INVALID_OPTION',
    /`prefetch` to be an integer between 1 and 10000, got `0`/,
  );
  rejectsWith(
    { ...base, maxDeliveries: 1.5 },
    'STEWARD_ERR_INVALID_OPTION',
    /`maxDeliveries`.*`1.5` \(number\)/,
  );
  rejectsWith(
    { ...base, concurrency: 8, prefetch: 4 },
    'STEWARD_ERR_OPTION_CONFLICT',
    /`prefetch` \(4\).*`concurrency` \(8\)/,
  );
  rejectsWith({ ...base, prefech: 5 }, 'STEWARD_ERR_UNKNOWN_OPTION', /Did you mean `prefetch`/);
  rejectsWith({ ...base, queue: 'orders' }, 'STEWARD_ERR_OPTION_CONFLICT', /`address` or `queue`/);
  rejectsWith({ name: 'x', handler: () => 1 }, 'STEWARD_ERR_INVALID_OPTION', /`address`/);
  rejectsWith({ ...base, handler: 'nope' }, 'STEWARD_ERR_INVALID_OPTION', /`handler` to be a function/);
  rejectsWith({ ...base, broker: 'qpid' }, 'STEWARD_ERR_INVALID_OPTION', /`broker` to be one of 'auto'/);
  rejectsWith(
    { ...base, reconnect: { initialDelay: 500, maxDelay: 100 } },
    'STEWARD_ERR_INVALID_OPTION',
    /reconnect.maxDelay/,
  );
  rejectsWith({ ...base, subscription: { name: 'sub' } }, 'STEWARD_ERR_OPTION_CONFLICT', /containerId/);
  rejectsWith({ ...base, properties: { a: {} } }, 'STEWARD_ERR_INVALID_OPTION', /`properties.a`/);
  const durable = resolveAmqpOptions({ ...base, containerId: 'katello', subscription: { name: 'sub' } });
  assert.deepEqual(durable.subscription, { name: 'sub', durable: true });
});

test('broker profiles: RabbitMQ retries with released and counts deliveries itself', () => {
  const rabbit = detectBroker({ product: 'RabbitMQ', version: '3.10.8' });
  assert.equal(rabbit.name, 'rabbitmq');
  assert.equal(rabbit.queueAddress('orders'), '/amq/queue/orders');
  assert.equal(retryOutcomeFor(rabbit, ['amqp:modified:list']), 'released');
  assert.equal(detectBroker({ product: 'apache-activemq-artemis' }).name, 'artemis');
  assert.equal(detectBroker(undefined).name, 'generic');
  assert.equal(retryOutcomeFor(brokerProfiles.generic, undefined), 'modified');
  assert.equal(
    retryOutcomeFor(brokerProfiles.artemis, ['amqp:accepted:list', 'amqp:released:list']),
    'released',
  );
  assert.equal(isFatalCondition({ condition: 'amqp:unauthorized-access' }), true);
  assert.equal(isFatalCondition({ code: 'CERT_HAS_EXPIRED' }), true);
  assert.equal(isFatalCondition({ condition: 'amqp:connection:forced' }), false);
  assert.equal(isFatalCondition(new Error('ECONNREFUSED')), false);
});

test('credit window: granted credit plus unsettled deliveries never exceed the limit, refilled in batches', () => {
  const window = new CreditWindow(10);
  assert.equal(window.toGrant(0), 10);
  for (let i = 0; i < 10; i++) window.received();
  for (let i = 0; i < 4; i++) window.settled();
  assert.equal(window.toGrant(0), 0, 'below the refill mark');
  window.settled();
  assert.equal(window.toGrant(0), 5);
  assert.equal(window.toGrant(3), 0);
  const whenEmpty = new CreditWindow(10, true);
  assert.equal(whenEmpty.toGrant(1), 0, 'RabbitMQ: no top-up while credit is left');
  assert.equal(whenEmpty.toGrant(0), 10);
});

test('bounded windows forget the oldest ids; message ids of every AMQP type become distinct keys', () => {
  const map = new BoundedMap<number>(2);
  map.set('a', 1);
  map.set('b', 2);
  map.set('c', 3);
  assert.equal(map.get('a'), undefined);
  assert.equal(map.size, 2);
  const dedup = new DedupWindow(0);
  dedup.remember('x');
  assert.equal(dedup.has('x'), false, 'a window of 0 is off');
  assert.notEqual(messageIdOf({ message_id: 7 } as Message), messageIdOf({ message_id: '7' } as Message));
  assert.equal(messageIdOf({ body: 'x' } as Message), undefined);
  const counter = new DeliveryCounter(100);
  const withoutId = { body: { id: 42 }, subject: 'host.update' } as Message;
  const key = counter.keyOf(withoutId);
  assert.equal(key, counter.keyOf({ ...withoutId }), 'messages without id are counted by content');
  counter.recordFailure(key);
  assert.equal(counter.recordFailure(key), 2);
  counter.forget(key);
  assert.equal(counter.failures(key), 0);
});
