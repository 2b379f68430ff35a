import type { BackoffOptions } from '../../common/backoff.js';
import { coerceError } from '../../errors.js';
import { durationOption, invalidOption, rejectUnknownKeys, requireObject } from '../../options.js';
import type { Service, ServiceContext, ServiceOptions } from '../../services/types.js';
import { ListenerHealth } from '../listener-health.js';
import {
  backoffOption,
  connectionStringOption,
  nameOption,
  pickServiceOptions,
  SERVICE_KEYS,
} from './common-options.js';
import { describeTarget } from './connection-error.js';
import { type Notification, NotifyConnection, quoteChannel } from './notify-connection.js';

/** What a `pgNotifyListener` handler receives for each notification. */
export interface NotifyHandlerEvent extends Omit<Notification, 'payload'> {
  /** The raw payload string, or the parsed value with `json: true`. */
  payload: unknown;
}

export interface PgNotifyListenerOptions extends ServiceOptions {
  name: string;
  /** PostgreSQL connection string of the dedicated LISTEN connection. */
  connectionString: string;
  /** Channels to LISTEN on (letters, digits, `_ . : -`, at most 63 characters). */
  channels: string | string[];
  /** Called once per notification, one at a time in arrival order. A rejection is logged and counted. */
  handler(notification: NotifyHandlerEvent): void | Promise<void>;
  /** Parse payloads as JSON; unparsable payloads are counted as failed and skipped. @default false */
  json?: boolean;
  /**
   * Called after every reconnection, once LISTEN is active again: notifications sent while the connection
   * was down are gone, so resynchronise here (for example re-read the state the notifications describe).
   */
  onReconnect?(): void | Promise<void>;
  /** Period of the liveness query on the connection, in ms. @default 10000 */
  checkInterval?: number | string;
  /** A liveness query or connect slower than this drops the connection, in ms. @default 5000 */
  checkTimeout?: number | string;
  /**
   * Reconnect backoff (jittered, forever); the low ceiling makes the listener LISTEN again within about a
   * second of the database's return. @default { initialDelay: 100, maxDelay: 1000, jitter: 0.5 }
   */
  reconnect?: Partial<BackoffOptions>;
}

const KEYS = [
  'name',
  'connectionString',
  'channels',
  'handler',
  'json',
  'onReconnect',
  'checkInterval',
  'checkTimeout',
  'reconnect',
  ...SERVICE_KEYS,
];

export const notifyDefaults = {
  checkInterval: 10_000,
  checkTimeout: 5_000,
  reconnect: { initialDelay: 100, maxDelay: 1_000, jitter: 0.5 },
};

interface ResolvedNotifyOptions {
  name: string;
  connectionString: string;
  channels: string[];
  handler: PgNotifyListenerOptions['handler'];
  json: boolean;
  onReconnect: (() => void | Promise<void>) | undefined;
  checkInterval: number;
  checkTimeout: number;
  reconnect: BackoffOptions;
  service: ServiceOptions;
}

/** The one place where listener options are checked. */
export function resolveNotifyOptions(input: unknown): ResolvedNotifyOptions {
  requireObject('options', input);
  rejectUnknownKeys(input, KEYS, '');
  const raw = input;
  const channels = typeof raw.channels === 'string' ? [raw.channels] : raw.channels;
  if (!Array.isArray(channels) || channels.length === 0)
    throw invalidOption('channels', 'a channel name or a non-empty array of them', raw.channels);
  for (const [i, channel] of channels.entries()) quoteChannel(`channels[${i}]`, channel);
  if (typeof raw.handler !== 'function') throw invalidOption('handler', 'a function', raw.handler);
  if (raw.json !== undefined && typeof raw.json !== 'boolean')
    throw invalidOption('json', 'a boolean', raw.json);
  if (raw.onReconnect !== undefined && typeof raw.onReconnect !== 'function')
    throw invalidOption('onReconnect', 'a function', raw.onReconnect);
  const d = notifyDefaults;
  const checkInterval =
    raw.checkInterval === undefined
      ? d.checkInterval
      : durationOption('checkInterval', raw.checkInterval, 100);
  const checkTimeout =
    raw.checkTimeout === undefined ? d.checkTimeout : durationOption('checkTimeout', raw.checkTimeout, 100);
  return {
    name: nameOption(raw),
    connectionString: connectionStringOption(raw),
    channels: [...new Set(channels as string[])],
    handler: raw.handler as PgNotifyListenerOptions['handler'],
    json: raw.json === true,
    onReconnect: raw.onReconnect as ResolvedNotifyOptions['onReconnect'],
    checkInterval,
    checkTimeout,
    reconnect: backoffOption('reconnect', raw.reconnect, d.reconnect),
    service: pickServiceOptions(raw),
  };
}

/** Runs notifications through the handler one at a time, in arrival order. */
function createDispatcher(options: ResolvedNotifyOptions, ctx: ServiceContext) {
  let chain: Promise<void> = Promise.resolve();
  const handleOne = async (notification: Notification) => {
    const started = Date.now();
    let payload: unknown = notification.payload;
    try {
      if (options.json) payload = JSON.parse(notification.payload);
      await options.handler({ ...notification, payload });
      ctx.recordEvent({ outcome: 'processed', durationMs: Date.now() - started });
    } catch (error) {
      ctx.logger.warn({ err: coerceError(error), channel: notification.channel }, 'pg:notification:failed');
      ctx.recordEvent({ outcome: 'failed', durationMs: Date.now() - started });
    }
  };
  return {
    push(notification: Notification) {
      chain = chain.then(() => handleOne(notification));
    },
    settled: () => chain,
  };
}

/**
 * A service that LISTENs on PostgreSQL channels over one dedicated connection and hands every
 * notification to `handler`. Reconnects forever with jittered backoff, LISTENs again on every channel,
 * then calls `onReconnect`.
 */
export function pgNotifyListener(input: PgNotifyListenerOptions): Service {
  const options = resolveNotifyOptions(input);
  return {
    ...options.service,
    name: options.name,
    async run(ctx) {
      const dispatcher = createDispatcher(options, ctx);
      // Notifications are handled one at a time and have no handler timeout: only the connection counts.
      const health = new ListenerHealth(ctx, {
        source: `PostgreSQL ${describeTarget(options.connectionString)}`,
        concurrency: 1,
        handlerTimeout: 0,
      });
      const connection = new NotifyConnection({
        connectionString: options.connectionString,
        channels: options.channels,
        logger: ctx.logger,
        checkInterval: options.checkInterval,
        checkTimeout: options.checkTimeout,
        reconnect: options.reconnect,
        onNotification: (notification) => dispatcher.push(notification),
        onConnect: async (reconnected) => {
          health.connected();
          ctx.setConnected(true);
          ctx.ready();
          ctx.progress();
          if (reconnected && options.onReconnect) await options.onReconnect();
        },
        onDisconnect: (error) => {
          health.disconnected(error);
          ctx.setConnected(false);
        },
        onAlive: () => ctx.progress(),
      });
      await connection.run(ctx.signal);
      health.dispose();
      ctx.setConnected(false);
      await dispatcher.settled();
    },
  };
}
