import type { ConnectionOptions as TlsConnectionOptions } from 'node:tls';
import type { Logger } from 'pino';
import type { Message } from 'rhea';
import { invalidOption, optionConflict, requireObject } from '../../common/option-checks.js';
import {
  boolean,
  duration,
  func,
  type Input,
  integer,
  oneOf,
  option,
  optionalGroup,
  type Resolved,
  required,
  resolveSpec,
  text,
} from '../../common/option-spec.js';
import { backoff } from '../../common/option-spec-backoff.js';
import { listenerValve } from '../../common/valve-options.js';
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

/** Host, port and credentials read from `url`; the separate options win over them. */
interface UrlEndpoint {
  host?: string;
  port?: number;
  username?: string;
  password?: string;
  tls: boolean;
}

const URL_EXPECTED = 'an amqp:// or amqps:// URL';

function parseUrl(name: string, value: unknown): UrlEndpoint {
  let url: URL;
  try {
    url = new URL(String(value));
  } catch {
    // Only the type is shown: the rest may carry a password.
    throw invalidOption(name, URL_EXPECTED, typeof value);
  }
  if (url.protocol !== 'amqp:' && url.protocol !== 'amqps:')
    throw invalidOption(name, URL_EXPECTED, url.protocol);
  return {
    host: url.hostname || undefined,
    port: url.port ? Number(url.port) : undefined,
    username: url.username ? decodeURIComponent(url.username) : undefined,
    password: url.password ? decodeURIComponent(url.password) : undefined,
    tls: url.protocol === 'amqps:',
  };
}

/** A bare queue name: the broker profile turns it into an address, so it may not be one already. */
const QUEUE_EXPECTED = 'a non-empty queue name without `/`';
const TLS_EXPECTED = 'true, false or an object of Node TLS options';

/** Options of `amqpListener()`; the service host's options (`restart`, `stallTimeout`, `singleton`) pass through. */
export const amqpSpec = {
  /** Service name, unique in the services module; it appears in logs, metrics and status. */
  name: required(text(undefined, 'a non-empty service name')),
  /** `amqp://user:password@host:5672` or `amqps://...`; the parts may also be given one by one below. */
  url: option<string, UrlEndpoint | undefined>({ kind: 'custom', expected: URL_EXPECTED, parse: parseUrl }),
  /** @default '127.0.0.1' (or the URL's host) */
  host: text(),
  /** @default 5672, or 5671 with TLS */
  port: integer({ min: 1, max: 65_535 }),
  /** SASL PLAIN user name; without it SASL ANONYMOUS is used. */
  username: text(),
  /** SASL PLAIN password. Never logged. */
  password: option<string, string | undefined>({
    kind: 'string',
    expected: 'a string',
    parse(name, value) {
      if (typeof value !== 'string') throw invalidOption(name, 'a string', typeof value);
      return value;
    },
  }),
  /** Hostname sent in the AMQP open frame; RabbitMQ reads a virtual host from it as `vhost:NAME`. */
  hostname: text(),
  /** `true` or Node TLS options (ca, cert, key, servername, rejectUnauthorized) to connect over TLS. */
  tls: option<boolean | TlsConnectionOptions, boolean | TlsConnectionOptions | undefined>({
    kind: 'custom',
    expected: TLS_EXPECTED,
    parse(name, value) {
      if (typeof value !== 'boolean' && (typeof value !== 'object' || value === null || Array.isArray(value)))
        throw invalidOption(name, TLS_EXPECTED, value);
      return value as boolean | TlsConnectionOptions;
    },
  }),
  /** Connection properties sent in the open frame (shown in the broker's connection list). */
  properties: option<Record<string, string | number | boolean>, Record<string, string | number | boolean>>({
    kind: 'custom',
    expected: 'an object',
    default: {},
    parse(name, value) {
      requireObject(name, value);
      for (const [key, item] of Object.entries(value)) {
        if (!['string', 'number', 'boolean'].includes(typeof item))
          throw invalidOption(`${name}.${key}`, 'a string, number or boolean', item);
      }
      return value as Record<string, string | number | boolean>;
    },
  }),
  /** Address to consume, as the broker spells it (`/amq/queue/orders`, `/exchange/x/key`, `orders`). */
  address: text(),
  /** A queue name, translated for the broker found at connection time (RabbitMQ: `/amq/queue/NAME`). */
  queue: option<string, string | undefined>({
    kind: 'string',
    expected: QUEUE_EXPECTED,
    parse(name, value) {
      if (typeof value !== 'string' || value.length === 0 || value.includes('/'))
        throw invalidOption(name, QUEUE_EXPECTED, value);
      return value;
    },
  }),
  /** Resolving settles the message as accepted; throwing (or rejecting) asks for a redelivery. */
  handler: required(func<AmqpHandler>()),
  /** `'workers'`: link credit and handlers at once follow the HTTP workers' load (docs/valve.md). @default 'none' */
  valve: listenerValve,
  /** Handlers running at once. @default 1 */
  concurrency: integer({ min: 1, max: 1_000, default: 1 }),
  /** Deliveries held unsettled at most (running plus buffered); the link credit never exceeds it. @default max(100, concurrency) */
  prefetch: integer({ min: 1, max: 10_000 }),
  /** Deliveries of one message before it is rejected to the broker's dead-letter path. @default 5 */
  maxDeliveries: integer({ min: 1, max: 1_000, default: 5 }),
  /**
   * A handler still pending after this long (ms or `'30s'`) fails its delivery with
   * STEWARD_ERR_HANDLER_TIMEOUT (released for redelivery, or rejected at `maxDeliveries`) and gives back its
   * concurrency slot and its credit; its signal aborts and its promise is abandoned. 0 means no limit.
   * A handler that has not settled in 30 s is almost surely hung (no network call of a healthy dependency
   * takes that long), and 30 s is short enough that hung handlers free their slots while the messages
   * behind them are still fresh. Handlers doing longer work set their own.
   * @default 30000
   */
  handlerTimeout: duration({ min: 0, default: 30_000 }),
  /**
   * Wait before a failed delivery is handed back for a retry, doubling per delivery (jittered, up to
   * `maxDelay`); the delivery keeps its credit meanwhile, its concurrency slot goes to other messages.
   * With the defaults and `maxDeliveries` 5 the retries span about 15 s, so a transient outage of what
   * the handler needs does not dead-letter the message. `{ initialDelay: 0 }` releases at once.
   * @default { initialDelay: 1000, maxDelay: 30000, jitter: 0.2 }
   */
  redeliveryDelay: backoff({ initialDelay: 1_000, maxDelay: 30_000, jitter: 0.2 }),
  /** Remember this many recently handled `message_id`s and accept repeats without running the handler; 0 disables. @default 0 */
  dedupWindow: integer({ min: 0, max: 1_000_000, default: 0 }),
  /** Broker dialect; `'auto'` reads the product name the broker sends when the connection opens. @default 'auto' */
  broker: oneOf<BrokerName | 'auto'>(['auto', 'rabbitmq', 'artemis', 'generic'], 'auto'),
  /** Container id of the connection; fix it for durable subscriptions. @default a random id */
  containerId: text(),
  /** Durable subscription for topic addresses (Artemis multicast, for example). */
  subscription: optionalGroup({
    /** Link name; with `durable` and a fixed `containerId` it names the subscription on the broker. */
    name: required(text(undefined, 'a non-empty link name')),
    /** Keep the subscription (and its messages) while the listener is away. @default true */
    durable: boolean(true),
  }),
  /**
   * Delay between reconnect attempts (ms), jittered, doubling up to `maxDelay`; it starts over once a
   * link stayed attached for a second. The low ceiling makes the listener consume again within about a
   * second of the broker's return, whatever the outage length.
   * @default { initialDelay: 100, maxDelay: 1000, jitter: 0.2 }
   */
  reconnect: backoff({ initialDelay: 100, maxDelay: 1_000, jitter: 0.2 }, 1),
  /** Attaching must finish within this time (ms or `'10s'`) or the attempt counts as failed. @default 10000 */
  connectTimeout: duration({ min: 1, default: 10_000 }),
  /** Idle timeout announced to the broker, so a silent dead peer is noticed (ms); 0 disables. @default 30000 */
  idleTimeout: duration({ min: 0, default: 30_000 }),
  /** How long the listener may take to settle after its signal aborts, in ms or `'10s'`. @default 10000 */
  stopTimeout: duration({ min: 1, default: 10_000 }),
};

/** A named (optionally durable) subscription, for topic-style addresses. */
export type AmqpSubscriptionOptions = NonNullable<Input<typeof amqpSpec>['subscription']>;

export type AmqpListenerOptions = Input<typeof amqpSpec> & Omit<ServiceOptions, 'stopTimeout'>;

type Parsed = Resolved<typeof amqpSpec>;

/** What the listener runs with: the endpoint merged from `url` and the separate options, the address chosen. */
export interface ResolvedAmqpOptions
  extends Omit<Parsed, 'url' | 'host' | 'port' | 'tls' | 'address' | 'queue' | 'prefetch'> {
  host: string;
  port: number;
  tls: TlsConnectionOptions | undefined;
  address: { kind: 'address' | 'queue'; value: string };
  prefetch: number;
}

const PASSTHROUGH = ['restart', 'stallTimeout', 'singleton'];

/** Host, port and credentials from `url` and the separate options; separate options win. */
function mergeEndpoint(parsed: Parsed) {
  const fromUrl: UrlEndpoint = parsed.url ?? { tls: false };
  const tlsGiven = parsed.tls ?? fromUrl.tls;
  const tls = tlsGiven === false ? undefined : tlsGiven === true ? {} : tlsGiven;
  return {
    host: parsed.host ?? fromUrl.host ?? '127.0.0.1',
    port: parsed.port ?? fromUrl.port ?? (tls ? 5671 : 5672),
    username: parsed.username ?? fromUrl.username,
    password: parsed.password ?? fromUrl.password,
    tls,
  };
}

function chooseAddress(parsed: Parsed): ResolvedAmqpOptions['address'] {
  if (parsed.address !== undefined && parsed.queue !== undefined)
    throw optionConflict('Give `address` or `queue`, not both', ['address', 'queue']);
  if (parsed.address !== undefined) return { kind: 'address', value: parsed.address };
  if (parsed.queue !== undefined) return { kind: 'queue', value: parsed.queue };
  throw invalidOption('address', 'a non-empty address (or give `queue`)', undefined);
}

/** The one place where `amqpListener` options are checked; every error names option, range and value. */
export function resolveAmqpOptions(input: unknown): ResolvedAmqpOptions {
  const parsed = resolveSpec(amqpSpec, input, 'options', { passthrough: PASSTHROUGH });
  const { url: _url, queue: _queue, ...given } = parsed;
  const { concurrency } = parsed;
  // A window smaller than the handlers running at once would leave handlers idle.
  const prefetch = parsed.prefetch ?? Math.max(100, concurrency);
  if (prefetch < concurrency)
    throw optionConflict(`Expected \`prefetch\` (${prefetch}) to be >= \`concurrency\` (${concurrency})`, [
      'prefetch',
      'concurrency',
    ]);
  if (parsed.subscription?.durable && parsed.containerId === undefined)
    throw optionConflict('A durable `subscription` needs a fixed `containerId` to be found again', [
      'subscription.durable',
      'containerId',
    ]);
  return { ...given, ...mergeEndpoint(parsed), address: chooseAddress(parsed), prefetch };
}
