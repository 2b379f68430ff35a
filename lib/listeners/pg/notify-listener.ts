import { invalidOption } from '../../common/option-checks.js';
import { boolean, func, type Input, option, required } from '../../common/option-spec.js';
import { coerceError } from '../../errors.js';
import type { Service, ServiceContext, ServiceOptions } from '../../services/types.js';
import { ListenerHealth } from '../listener-health.js';
import { listenSpec, pgServiceSpec, resolvePgService } from './common-options.js';
import { describeTarget } from './connection-error.js';
import { type Notification, NotifyConnection, quoteChannel } from './notify-connection.js';

/** What a `pgNotifyListener` handler receives for each notification. */
export interface NotifyHandlerEvent extends Omit<Notification, 'payload'> {
  /** The raw payload string, or the parsed value with `json: true`. */
  payload: unknown;
}

const CHANNELS_EXPECTED = 'a channel name or a non-empty array of them';

/** Options of `pgNotifyListener()`; the service host's options (`restart`, `stallTimeout`, ...) pass through. */
export const notifySpec = {
  ...pgServiceSpec,
  /** Channels to LISTEN on (letters, digits, `_ . : -`, at most 63 characters). */
  channels: required(
    option<string | string[], string[]>({
      kind: 'custom',
      expected: CHANNELS_EXPECTED,
      parse(name, value) {
        const channels = typeof value === 'string' ? [value] : value;
        if (!Array.isArray(channels) || channels.length === 0)
          throw invalidOption(name, CHANNELS_EXPECTED, value);
        for (const [i, channel] of channels.entries()) quoteChannel(`${name}[${i}]`, channel);
        return [...new Set(channels as string[])];
      },
    }),
  ),
  /** Called once per notification, one at a time in arrival order. A rejection is logged and counted. */
  handler: required(func<(notification: NotifyHandlerEvent) => void | Promise<void>>()),
  /** Parse payloads as JSON; unparsable payloads are counted as failed and skipped. @default false */
  json: boolean(false),
  /**
   * Called after every reconnection, once LISTEN is active again: notifications sent while the connection
   * was down are gone, so resynchronise here (for example re-read the state the notifications describe).
   */
  onReconnect: func<() => void | Promise<void>>(),
  ...listenSpec,
};

export type PgNotifyListenerOptions = Input<typeof notifySpec> & ServiceOptions;

type ResolvedNotifyOptions = ReturnType<typeof resolveNotifyOptions>;

/** The one place where listener options are checked. */
export function resolveNotifyOptions(input: unknown) {
  return resolvePgService(notifySpec, input);
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
