import type { Logger } from 'pino';
import { type BackoffOptions, backoffDelay, delay } from '../../common/backoff.js';
import { StewardError } from '../../errors.js';
import { closeQuietly, queryWithTimeout } from './connection.js';
import { pgConnectionError } from './connection-error.js';
import { Client } from './pg-driver.js';

/** A channel name is sent as a quoted identifier in LISTEN: validated, never escaped. */
const CHANNEL = /^[A-Za-z0-9_.:-]{1,63}$/;

export function quoteChannel(option: string, channel: unknown): string {
  if (typeof channel !== 'string' || !CHANNEL.test(channel)) {
    throw new StewardError(
      'STEWARD_ERR_INVALID_IDENTIFIER',
      `Expected \`${option}\` to be a channel name of 1 to 63 letters, digits, '_', '.', ':' or '-', got ${JSON.stringify(channel) ?? String(channel)}`,
      { details: { option } },
    );
  }
  return `"${channel}"`;
}

/** One NOTIFY as received on a LISTEN connection. */
export interface Notification {
  channel: string;
  payload: string;
  /** Backend pid of the notifying session. */
  processId: number;
}

export interface NotifyConnectionOptions {
  connectionString: string;
  channels: string[];
  logger: Logger;
  /** Period of the liveness query, in ms. */
  checkInterval: number;
  /** A liveness query (or the connect) slower than this declares the connection dead, in ms. */
  checkTimeout: number;
  reconnect: BackoffOptions;
  onNotification(notification: Notification): void;
  /** After LISTEN succeeded; `reconnected` is false on the first connection. */
  onConnect(reconnected: boolean): void | Promise<void>;
  onDisconnect(error: unknown): void;
  /** After every successful liveness query (feeds the stall watchdog of an idle listener). */
  onAlive?(): void;
}

/**
 * One dedicated LISTEN connection (never from a pool: a pooled client would be handed to other queries
 * and LISTEN state would leak or vanish), kept alive forever: TCP keepalive, a periodic liveness query
 * with a timeout, and reconnection with jittered backoff that LISTENs again on every channel.
 */
export class NotifyConnection {
  readonly #options: NotifyConnectionOptions;

  constructor(options: NotifyConnectionOptions) {
    this.#options = options;
  }

  /** Runs until `signal` aborts; never rejects. */
  async run(signal: AbortSignal): Promise<void> {
    const { logger, reconnect } = this.#options;
    let attempt = 0;
    let connectedBefore = false;
    while (!signal.aborted) {
      const client = this.#createClient();
      let lost: unknown;
      try {
        await client.connect();
        await this.#boundSession(client);
        for (const channel of this.#options.channels)
          await client.query(`LISTEN ${quoteChannel('channel', channel)}`);
        attempt = 0;
        logger.info(
          { channels: this.#options.channels, reconnected: connectedBefore },
          'pg:listen:connected',
        );
        await this.#callOnConnect(connectedBefore);
        connectedBefore = true;
        lost = await this.#hold(client, signal);
      } catch (error) {
        lost = error;
      }
      await closeQuietly(client);
      if (signal.aborted) break;
      lost = pgConnectionError(this.#options.connectionString, lost);
      this.#options.onDisconnect(lost);
      const wait = backoffDelay(attempt++, reconnect);
      logger.warn({ err: lost, delayMs: wait, attempt }, 'pg:listen:reconnecting');
      await delay(wait, signal);
    }
  }

  #createClient(): Client {
    const client = new Client({
      connectionString: this.#options.connectionString,
      keepAlive: true,
      keepAliveInitialDelayMillis: 5_000,
      connectionTimeoutMillis: this.#options.checkTimeout,
      application_name: 'cluster-steward:listen',
    });
    client.on('error', () => {}); // reported through #hold; an unhandled 'error' would kill the process
    client.on('notification', (message) =>
      this.#options.onNotification({
        channel: message.channel,
        payload: message.payload ?? '',
        processId: message.processId,
      }),
    );
    return client;
  }

  /**
   * Has the server end this session after 3 × checkInterval + checkTimeout without a query. The liveness
   * query keeps a live listener far from it; a frozen one (whose kernel still answers keepalives) would
   * otherwise stay listening forever and hold back the server's notification queue, which every
   * session's NOTIFY shares. Needs PostgreSQL 14; older servers keep the session as before.
   */
  async #boundSession(client: Client): Promise<void> {
    const { checkInterval, checkTimeout, logger } = this.#options;
    const bound = String(3 * checkInterval + checkTimeout);
    try {
      await queryWithTimeout(
        client,
        `SELECT set_config('idle_session_timeout', $1, false), set_config('tcp_user_timeout', $1, false)`,
        [bound],
        checkTimeout,
      );
    } catch (error) {
      // undefined_object: a server older than 14 has no idle_session_timeout.
      if ((error as { code?: string }).code !== '42704') throw error;
      logger.debug({ err: error }, 'pg:listen:session-unbounded');
    }
  }

  async #callOnConnect(reconnected: boolean): Promise<void> {
    try {
      await this.#options.onConnect(reconnected);
    } catch (error) {
      this.#options.logger.error({ err: error }, 'pg:listen:on-reconnect:failed');
    }
  }

  /** Resolves with the reason the connection is gone, or undefined when `signal` aborted. */
  #hold(client: Client, signal: AbortSignal): Promise<unknown> {
    const { checkInterval, checkTimeout } = this.#options;
    return new Promise((resolve) => {
      let timer: NodeJS.Timeout | undefined;
      let done = false;
      const finish = (reason: unknown) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        signal.removeEventListener('abort', onAbort);
        resolve(reason);
      };
      const onAbort = () => finish(undefined);
      // The signal may have aborted while connecting: 'abort' would never fire again.
      if (signal.aborted) return finish(undefined);
      signal.addEventListener('abort', onAbort, { once: true });
      client.once('error', (error) => finish(error));
      client.once('end', () =>
        finish(new StewardError('STEWARD_ERR_PG_CONNECTION', 'LISTEN connection ended unexpectedly')),
      );
      const check = () => {
        queryWithTimeout(client, 'SELECT 1', [], checkTimeout).then(
          () => {
            this.#options.onAlive?.();
            if (!done) timer = setTimeout(check, checkInterval);
          },
          (error: unknown) => finish(error),
        );
      };
      timer = setTimeout(check, checkInterval);
    });
  }
}
