import { createHash } from 'node:crypto';
import pg from 'pg';
import type { Logger } from 'pino';
import { delay } from '../../common/backoff.js';
import { StewardError } from '../../errors.js';
import { durationOption, invalidOption } from '../../options.js';
import { closeQuietly, queryWithTimeout } from './connection.js';

/** Options of `acquireSingleton()`. */
export interface SingletonLockOptions {
  /** PostgreSQL connection string of the dedicated lock connection. */
  connectionString: string;
  /** Lock name, hashed to the 64-bit advisory lock key. */
  key: string;
  /** Retry period while another session holds the lock, and liveness check period while held, in ms. */
  checkInterval: number;
  logger: Logger;
}

/** A held singleton lock. */
export interface SingletonLease {
  /** Aborts (reason: a `STEWARD_ERR_PG_CONNECTION` error) once the lock may no longer be held. */
  readonly lost: AbortSignal;
  /** Unlocks and closes the dedicated connection; safe to call more than once and after `lost`. */
  release(): Promise<void>;
}

/** The advisory lock key of a singleton name: the first 64 bits of its SHA-256, as a signed bigint string. */
export function singletonLockKey(key: string): string {
  const digest = createHash('sha256').update(`cluster-steward:singleton:${key}`).digest();
  return digest.readBigInt64BE(0).toString();
}

function validate(options: SingletonLockOptions): void {
  if (typeof options.connectionString !== 'string' || options.connectionString.length === 0)
    throw invalidOption('singleton.connectionString', 'a non-empty PostgreSQL connection string', '(hidden)');
  if (typeof options.key !== 'string' || options.key.length === 0)
    throw invalidOption('singleton.key', 'a non-empty string', options.key);
  durationOption('singleton.checkInterval', options.checkInterval, 10);
}

/** How long a liveness or lock query may take before the connection is declared dead. */
function queryTimeoutOf(checkInterval: number): number {
  return Math.max(2 * checkInterval, 1_000);
}

function openClient(options: SingletonLockOptions): pg.Client {
  // Keepalive lets the kernel notice a silently dead peer; the liveness query bounds the rest.
  // `application_name` in the connection string wins over this default (pg parses it last).
  return new pg.Client({
    connectionString: options.connectionString,
    keepAlive: true,
    keepAliveInitialDelayMillis: 5_000,
    connectionTimeoutMillis: queryTimeoutOf(options.checkInterval),
    application_name: 'cluster-steward:singleton',
  });
}

/** Connects a dedicated client; a connection error after connect() must never be an unhandled 'error'. */
async function connect(options: SingletonLockOptions): Promise<pg.Client> {
  const client = openClient(options);
  client.on('error', () => {});
  try {
    await client.connect();
  } catch (error) {
    await closeQuietly(client);
    throw error;
  }
  return client;
}

async function tryLock(client: pg.Client, lockKey: string, options: SingletonLockOptions): Promise<boolean> {
  const result = await queryWithTimeout<{ locked: boolean }>(
    client,
    'SELECT pg_try_advisory_lock($1::bigint) AS locked',
    [lockKey],
    queryTimeoutOf(options.checkInterval),
  );
  return result.rows[0]?.locked === true;
}

/**
 * Waits until this process holds the PostgreSQL session advisory lock named `key`, on a dedicated
 * connection (never pooled: a session lock belongs to one backend). Retries every `checkInterval` on the
 * same connection while another session holds it, and reconnects while the database is unreachable;
 * resolves null once `signal` aborts. While held, a liveness query runs every `checkInterval`: a failed
 * or slow query, a connection error or its end aborts `lost`. When the holder dies, PostgreSQL ends its
 * backend as soon as it reads the closed socket, which releases the lock for the next holder.
 */
export async function acquireSingleton(
  options: SingletonLockOptions,
  signal: AbortSignal,
): Promise<SingletonLease | null> {
  validate(options);
  const lockKey = singletonLockKey(options.key);
  let waitingLogged = false;
  let failing = false;
  let client: pg.Client | null = null;
  while (!signal.aborted) {
    try {
      client ??= await connect(options);
      if (await tryLock(client, lockKey, options)) {
        if (signal.aborted) break;
        options.logger.info({ key: options.key }, 'singleton:acquired');
        return holdLease(client, lockKey, options);
      }
      failing = false;
      if (!waitingLogged) options.logger.info({ key: options.key }, 'singleton:acquire:waiting');
      waitingLogged = true;
    } catch (error) {
      // Once per outage at warn level; the retries every checkInterval would flood the log.
      options.logger[failing ? 'debug' : 'warn'](
        { err: error, key: options.key },
        'singleton:acquire:failed',
      );
      failing = true;
      if (client) await closeQuietly(client);
      client = null;
    }
    await delay(options.checkInterval, signal);
  }
  // Ending the session also releases a lock taken just as the signal aborted.
  if (client) await closeQuietly(client);
  return null;
}

async function unlockAndClose(client: pg.Client, lockKey: string): Promise<void> {
  try {
    await queryWithTimeout(client, 'SELECT pg_advisory_unlock($1::bigint)', [lockKey], 2_000);
  } catch {
    // Closing the session below releases the lock anyway.
  }
  await closeQuietly(client);
}

function holdLease(client: pg.Client, lockKey: string, options: SingletonLockOptions): SingletonLease {
  const controller = new AbortController();
  let released = false;
  let timer: NodeJS.Timeout | undefined;

  const lose = (cause: unknown, reason: string) => {
    if (released || controller.signal.aborted) return;
    clearTimeout(timer);
    options.logger.warn({ key: options.key, reason, err: cause }, 'singleton:lost');
    controller.abort(
      new StewardError('STEWARD_ERR_PG_CONNECTION', `Singleton lock \`${options.key}\` lost: ${reason}`, {
        cause,
        details: { key: options.key, reason },
      }),
    );
    void closeQuietly(client);
  };
  client.on('error', (error) => lose(error, 'connection error'));
  client.on('end', () => lose(undefined, 'connection ended'));

  const check = async () => {
    try {
      await queryWithTimeout(client, 'SELECT 1', [], queryTimeoutOf(options.checkInterval));
    } catch (error) {
      lose(error, 'liveness check failed');
      return;
    }
    if (!released && !controller.signal.aborted) timer = setTimeout(check, options.checkInterval);
  };
  timer = setTimeout(check, options.checkInterval);

  return {
    lost: controller.signal,
    async release() {
      if (released) return;
      released = true;
      clearTimeout(timer);
      if (!controller.signal.aborted) await unlockAndClose(client, lockKey);
      options.logger.info({ key: options.key }, 'singleton:released');
    },
  };
}
