import type { ConnectionOptions as TlsConnectionOptions } from 'node:tls';
import type { Logger } from 'pino';
import type { Message } from 'rhea';
import type { BackoffOptions } from '../../common/backoff.js';
import { StewardError } from '../../errors.js';
import {
  durationOption,
  integerOption,
  invalidOption,
  numberOption,
  rejectUnknownKeys,
  requireObject,
} from '../../options.js';
import type { ServiceOptions } from '../../services/types.js';
import type { BrokerName } from './broker-profile.js';

/** What a handler learns about the delivery besides the message itself. */
export interface AmqpDeliveryInfo {
  /** 1 for the first delivery; the larger of the broker's count and the listener's own count. */
  attempt: number;
  /** True when the broker says the message was delivered before (`first_acquirer` false). */
  redelivered: boolean;
  /**
   * Aborts when the outcome of this delivery no longer depends on the handler: the link dropped (the
   * broker redelivers the message) or the listener stopped past its deadline (the message is released).
   */
  signal: AbortSignal;
  logger: Logger;
}

/** Resolving settles the message as accepted; throwing (or rejecting) asks for a redelivery. */
export type AmqpHandler = (message: Message, info: AmqpDeliveryInfo) => unknown;

/** A named (optionally durable) subscription, for topic-style addresses. */
export interface AmqpSubscriptionOptions {
  /** Link name; with `durable` and a fixed `containerId` it names the subscription on the broker. */
  name: string;
  /** Keep the subscription (and its messages) while the listener is away. @default true */
  durable?: boolean;
}

export interface AmqpListenerOptions extends ServiceOptions {
  /** Service name, unique in the services module; it appears in logs, metrics and status. */
  name: string;
  /** `amqp://user:password@host:5672` or `amqps://...`; the parts may also be given one by one below. */
  url?: string;
  /** @default '127.0.0.1' (or the URL's host) */
  host?: string;
  /** @default 5672, or 5671 with TLS */
  port?: number;
  /** SASL PLAIN user name; without it SASL ANONYMOUS is used. */
  username?: string;
  /** SASL PLAIN password. Never logged. */
  password?: string;
  /** Hostname sent in the AMQP open frame; RabbitMQ reads a virtual host from it as `vhost:NAME`. */
  hostname?: string;
  /** `true` or Node TLS options (ca, cert, key, servername, rejectUnauthorized) to connect over TLS. */
  tls?: boolean | TlsConnectionOptions;
  /** Connection properties sent in the open frame (shown in the broker's connection list). */
  properties?: Record<string, string | number | boolean>;
  /** Address to consume, as the broker spells it (`/amq/queue/orders`, `/exchange/x/key`, `orders`). */
  address?: string;
  /** A queue name, translated for the broker found at connection time (RabbitMQ: `/amq/queue/NAME`). */
  queue?: string;
  handler: AmqpHandler;
  /** Handlers running at once. @default 1 */
  concurrency?: number;
  /** Deliveries held unsettled at most (running plus buffered); the link credit never exceeds it. @default 100 */
  prefetch?: number;
  /** Deliveries of one message before it is rejected to the broker's dead-letter path. @default 5 */
  maxDeliveries?: number;
  /**
   * A handler still pending after this long (ms or `'30s'`) fails its delivery with
   * STEWARD_ERR_HANDLER_TIMEOUT (released for redelivery, or rejected at `maxDeliveries`) and gives back its
   * concurrency slot and its credit; its signal aborts and its promise is abandoned. 0 means no limit.
   * @default 30000
   */
  handlerTimeout?: number | string;
  /**
   * Wait before a failed delivery is handed back for a retry, doubling per delivery (jittered, up to
   * `maxDelay`); the delivery keeps its credit meanwhile, its concurrency slot goes to other messages.
   * With the defaults and `maxDeliveries` 5 the retries span about 15 s, so a transient outage of what
   * the handler needs does not dead-letter the message. `{ initialDelay: 0 }` releases at once.
   * @default { initialDelay: 1000, maxDelay: 30000, jitter: 0.2 }
   */
  redeliveryDelay?: Partial<BackoffOptions>;
  /** Remember this many recently handled `message_id`s and accept repeats without running the handler; 0 disables. @default 0 */
  dedupWindow?: number;
  /** Broker dialect; `'auto'` reads the product name the broker sends when the connection opens. @default 'auto' */
  broker?: BrokerName | 'auto';
  /** Container id of the connection; fix it for durable subscriptions. @default a random id */
  containerId?: string;
  /** Durable subscription for topic addresses (Artemis multicast, for example). */
  subscription?: AmqpSubscriptionOptions;
  /**
   * Delay between reconnect attempts (ms), jittered, doubling up to `maxDelay`; it starts over once a
   * link stayed attached for a second. The low ceiling makes the listener consume again within about a
   * second of the broker's return, whatever the outage length.
   * @default { initialDelay: 100, maxDelay: 1000, jitter: 0.2 }
   */
  reconnect?: Partial<BackoffOptions>;
  /** Attaching must finish within this time (ms or `'10s'`) or the attempt counts as failed. @default 10000 */
  connectTimeout?: number | string;
  /** Idle timeout announced to the broker, so a silent dead peer is noticed (ms); 0 disables. @default 30000 */
  idleTimeout?: number | string;
}

export interface ResolvedAmqpOptions {
  name: string;
  host: string;
  port: number;
  username: string | undefined;
  password: string | undefined;
  hostname: string | undefined;
  tls: TlsConnectionOptions | undefined;
  properties: Record<string, string | number | boolean>;
  address: { kind: 'address' | 'queue'; value: string };
  handler: AmqpHandler;
  concurrency: number;
  prefetch: number;
  maxDeliveries: number;
  handlerTimeout: number;
  redeliveryDelay: BackoffOptions;
  dedupWindow: number;
  broker: BrokerName | 'auto';
  containerId: string | undefined;
  subscription: { name: string; durable: boolean } | undefined;
  reconnect: BackoffOptions;
  connectTimeout: number;
  idleTimeout: number;
  stopTimeout: number;
}

export const amqpDefaults = {
  host: '127.0.0.1',
  port: 5672,
  tlsPort: 5671,
  concurrency: 1,
  prefetch: 100,
  maxDeliveries: 5,
  // A handler that has not settled in 30 s is almost surely hung (no network call of a healthy
  // dependency takes that long), and 30 s is short enough that hung handlers free their slots while the
  // messages behind them are still fresh. Handlers doing longer work set their own.
  handlerTimeout: 30_000,
  redeliveryDelay: { initialDelay: 1_000, maxDelay: 30_000, jitter: 0.2 },
  dedupWindow: 0,
  broker: 'auto' as const,
  reconnect: { initialDelay: 100, maxDelay: 1_000, jitter: 0.2 },
  connectTimeout: 10_000,
  idleTimeout: 30_000,
  stopTimeout: 10_000,
};

const KEYS = [
  'name',
  'url',
  'host',
  'port',
  'username',
  'password',
  'hostname',
  'tls',
  'properties',
  'address',
  'queue',
  'handler',
  'concurrency',
  'prefetch',
  'maxDeliveries',
  'handlerTimeout',
  'redeliveryDelay',
  'dedupWindow',
  'broker',
  'containerId',
  'subscription',
  'reconnect',
  'connectTimeout',
  'idleTimeout',
  'restart',
  'stallTimeout',
  'stopTimeout',
  'singleton',
];
const BROKERS = ['auto', 'rabbitmq', 'artemis', 'generic'];

function stringOption(name: string, value: unknown): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || value.length === 0) throw invalidOption(name, 'a non-empty string', value);
  return value;
}

function conflict(message: string, options: string[]): StewardError {
  return new StewardError('STEWARD_ERR_OPTION_CONFLICT', message, { details: { options } });
}

/** Host, port and credentials from `url` and the separate options; separate options win. */
function resolveEndpoint(raw: Record<string, unknown>) {
  let fromUrl: { host?: string; port?: number; username?: string; password?: string; tls: boolean } = {
    tls: false,
  };
  if (raw.url !== undefined) {
    let url: URL;
    try {
      url = new URL(String(raw.url));
    } catch {
      // Only the scheme is shown: the rest may carry a password.
      throw invalidOption('url', 'an amqp:// or amqps:// URL', typeof raw.url);
    }
    if (url.protocol !== 'amqp:' && url.protocol !== 'amqps:')
      throw invalidOption('url', 'an amqp:// or amqps:// URL', url.protocol);
    fromUrl = {
      host: url.hostname || undefined,
      port: url.port ? Number(url.port) : undefined,
      username: url.username ? decodeURIComponent(url.username) : undefined,
      password: url.password ? decodeURIComponent(url.password) : undefined,
      tls: url.protocol === 'amqps:',
    };
  }
  const tlsRaw = raw.tls ?? fromUrl.tls;
  if (typeof tlsRaw !== 'boolean' && (typeof tlsRaw !== 'object' || tlsRaw === null || Array.isArray(tlsRaw)))
    throw invalidOption('tls', 'true, false or an object of Node TLS options', tlsRaw);
  const tls = tlsRaw === false ? undefined : tlsRaw === true ? {} : (tlsRaw as TlsConnectionOptions);
  const password = raw.password ?? fromUrl.password;
  if (password !== undefined && typeof password !== 'string')
    throw invalidOption('password', 'a string', typeof password);
  return {
    host: stringOption('host', raw.host) ?? fromUrl.host ?? amqpDefaults.host,
    port:
      raw.port !== undefined
        ? integerOption('port', raw.port, 1, 65_535)
        : (fromUrl.port ?? (tls ? amqpDefaults.tlsPort : amqpDefaults.port)),
    username: stringOption('username', raw.username) ?? fromUrl.username,
    password,
    tls,
  };
}

function resolveAddress(raw: Record<string, unknown>): ResolvedAmqpOptions['address'] {
  const address = stringOption('address', raw.address);
  const queue = stringOption('queue', raw.queue);
  if (address !== undefined && queue !== undefined)
    throw conflict('Give `address` or `queue`, not both', ['address', 'queue']);
  if (address !== undefined) return { kind: 'address', value: address };
  if (queue !== undefined) {
    if (queue.includes('/')) throw invalidOption('queue', 'a queue name without `/`', queue);
    return { kind: 'queue', value: queue };
  }
  throw invalidOption('address', 'a non-empty address (or give `queue`)', undefined);
}

function resolveProperties(value: unknown): ResolvedAmqpOptions['properties'] {
  if (value === undefined) return {};
  requireObject('properties', value);
  for (const [key, item] of Object.entries(value)) {
    if (!['string', 'number', 'boolean'].includes(typeof item))
      throw invalidOption(`properties.${key}`, 'a string, number or boolean', item);
  }
  return value as ResolvedAmqpOptions['properties'];
}

function resolveSubscription(value: unknown): ResolvedAmqpOptions['subscription'] {
  if (value === undefined) return undefined;
  requireObject('subscription', value);
  rejectUnknownKeys(value, ['name', 'durable'], 'subscription.');
  const name = stringOption('subscription.name', value.name);
  if (name === undefined) throw invalidOption('subscription.name', 'a non-empty link name', value.name);
  const durable = value.durable ?? true;
  if (typeof durable !== 'boolean') throw invalidOption('subscription.durable', 'a boolean', durable);
  return { name, durable };
}

/** `{ initialDelay, maxDelay, jitter }` with defaults; a larger `initialDelay` alone raises the ceiling. */
function resolveBackoff(
  name: string,
  value: unknown,
  d: BackoffOptions,
  minMaxDelay: number,
): BackoffOptions {
  if (value === undefined) return { ...d };
  requireObject(name, value);
  rejectUnknownKeys(value, ['initialDelay', 'maxDelay', 'jitter'], `${name}.`);
  const initialDelay =
    value.initialDelay === undefined
      ? d.initialDelay
      : durationOption(`${name}.initialDelay`, value.initialDelay, 0);
  const backoff = {
    initialDelay,
    maxDelay:
      value.maxDelay === undefined
        ? Math.max(d.maxDelay, initialDelay)
        : durationOption(`${name}.maxDelay`, value.maxDelay, minMaxDelay),
    jitter: value.jitter === undefined ? d.jitter : numberOption(`${name}.jitter`, value.jitter, 0, 1),
  };
  if (backoff.maxDelay < backoff.initialDelay)
    throw invalidOption(
      `${name}.maxDelay`,
      `a duration >= ${name}.initialDelay (${backoff.initialDelay})`,
      backoff.maxDelay,
    );
  return backoff;
}

function optionalInteger(
  raw: Record<string, unknown>,
  key: string,
  fallback: number,
  min: number,
  max: number,
) {
  return raw[key] === undefined ? fallback : integerOption(key, raw[key], min, max);
}

function optionalDuration(raw: Record<string, unknown>, key: string, fallback: number, min: number) {
  return raw[key] === undefined ? fallback : durationOption(key, raw[key], min);
}

/** The one place where `amqpListener` options are checked; every error names option, range and value. */
export function resolveAmqpOptions(input: unknown): ResolvedAmqpOptions {
  requireObject('options', input);
  const raw = input;
  rejectUnknownKeys(raw, KEYS, '');
  const name = stringOption('name', raw.name);
  if (name === undefined) throw invalidOption('name', 'a non-empty service name', raw.name);
  if (typeof raw.handler !== 'function') throw invalidOption('handler', 'a function', raw.handler);
  const concurrency = optionalInteger(raw, 'concurrency', amqpDefaults.concurrency, 1, 1_000);
  const prefetch = optionalInteger(raw, 'prefetch', Math.max(amqpDefaults.prefetch, concurrency), 1, 10_000);
  if (prefetch < concurrency)
    throw conflict(`Expected \`prefetch\` (${prefetch}) to be >= \`concurrency\` (${concurrency})`, [
      'prefetch',
      'concurrency',
    ]);
  const broker = raw.broker ?? amqpDefaults.broker;
  if (!BROKERS.includes(broker as string))
    throw invalidOption('broker', `one of ${BROKERS.map((b) => `'${b}'`).join(', ')}`, broker);
  const subscription = resolveSubscription(raw.subscription);
  const containerId = stringOption('containerId', raw.containerId);
  if (subscription?.durable && containerId === undefined)
    throw conflict('A durable `subscription` needs a fixed `containerId` to be found again', [
      'subscription.durable',
      'containerId',
    ]);
  return {
    name,
    ...resolveEndpoint(raw),
    hostname: stringOption('hostname', raw.hostname),
    properties: resolveProperties(raw.properties),
    address: resolveAddress(raw),
    handler: raw.handler as AmqpHandler,
    concurrency,
    prefetch,
    maxDeliveries: optionalInteger(raw, 'maxDeliveries', amqpDefaults.maxDeliveries, 1, 1_000),
    handlerTimeout: optionalDuration(raw, 'handlerTimeout', amqpDefaults.handlerTimeout, 0),
    redeliveryDelay: resolveBackoff('redeliveryDelay', raw.redeliveryDelay, amqpDefaults.redeliveryDelay, 0),
    dedupWindow: optionalInteger(raw, 'dedupWindow', amqpDefaults.dedupWindow, 0, 1_000_000),
    broker: broker as ResolvedAmqpOptions['broker'],
    containerId,
    subscription,
    reconnect: resolveBackoff('reconnect', raw.reconnect, amqpDefaults.reconnect, 1),
    connectTimeout: optionalDuration(raw, 'connectTimeout', amqpDefaults.connectTimeout, 1),
    idleTimeout: optionalDuration(raw, 'idleTimeout', amqpDefaults.idleTimeout, 0),
    stopTimeout: optionalDuration(raw, 'stopTimeout', amqpDefaults.stopTimeout, 1),
  };
}
