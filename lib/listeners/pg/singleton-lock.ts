import { createHash } from 'node:crypto';
import { hostname } from 'node:os';
import type { Logger } from 'pino';
import { delay } from '../../common/backoff.js';
import { StewardError } from '../../errors.js';
import { defaultEpochTable, type EpochTable, type FencingToken } from '../../services/lease.js';
import { resolveSingleton } from '../../services/singleton-options.js';
import { closeQuietly, queryWithTimeout } from './connection.js';
import { nextEpoch } from './fencing.js';
import { Client } from './pg-driver.js';

/** Options of `acquireSingleton()`. */
export interface SingletonLockOptions {
  /** PostgreSQL connection string of the dedicated lock connection. */
  connectionString: string;
  /** Lock name, hashed to the 64-bit advisory lock key. */
  key: string;
  /** Renewal period while held, in ms; while another session holds the lock it is asked for every half period. */
  checkInterval: number;
  /**
   * Where each acquisition increments the key's epoch (the fencing token); `false` hands out no token.
   * @default { schema: 'public', table: 'steward_singleton_epochs' }
   */
  epochTable?: EpochTable | false;
  logger: Logger;
}

/** A held singleton lock. */
export interface SingletonLease {
  /**
   * Aborts (reason: a `STEWARD_ERR_PG_CONNECTION` error) once the lock may no longer be held: a renewal
   * failed, or none succeeded within `sessionBounds(checkInterval).standDownAfter` ms (also checked
   * first thing after the process was frozen), so always before the server can end the session.
   */
  readonly lost: AbortSignal;
  /** The epoch of this acquisition, or null with `epochTable: false`. */
  readonly fencing: FencingToken | null;
  /** Unlocks and closes the dedicated connection; safe to call more than once and after `lost`. */
  release(): Promise<void>;
}

/** The advisory lock key of a singleton name: the first 64 bits of its SHA-256, as a signed bigint string. */
export function singletonLockKey(key: string): string {
  const digest = createHash('sha256').update(`cluster-steward:singleton:${key}`).digest();
  return digest.readBigInt64BE(0).toString();
}

/** The same checks as a service's `singleton` option: `acquireSingleton()` may be called directly. */
function validate({ connectionString, key, checkInterval, epochTable }: SingletonLockOptions): void {
  resolveSingleton({ connectionString, key, checkInterval, epochTable });
}

/** The timing that makes a lost holder stop before anyone else can start (proof in docs/postgres.md). */
export interface SessionBounds {
  /** The server ends the lock session after this long without a query (`idle_session_timeout`), in ms. */
  sessionTimeout: number;
  /** The holder stands down when no renewal succeeded for this long, in ms. */
  standDownAfter: number;
}

/**
 * B = max(3 × checkInterval, 1.5 s) on the server; the holder gives up at B − max(checkInterval, 0.5 s),
 * which leaves a renewal period (at least 0.5 s) for timer lateness and clock rate differences.
 */
export function sessionBounds(checkInterval: number): SessionBounds {
  const sessionTimeout = Math.max(3 * checkInterval, 1_500);
  return { sessionTimeout, standDownAfter: sessionTimeout - Math.max(checkInterval, 500) };
}

/** How often a standby host asks for the lock. */
export function retryIntervalOf(checkInterval: number): number {
  return Math.max(10, Math.round(checkInterval / 2));
}

/** How long a lock or renewal query may take before the connection is declared dead. */
function queryTimeoutOf(checkInterval: number): number {
  return sessionBounds(checkInterval).standDownAfter;
}

function openClient(options: SingletonLockOptions): Client {
  // Keepalive lets the kernel notice a silently dead peer; the session bound covers the rest.
  // `application_name` in the connection string wins over this default (pg parses it last).
  return new Client({
    connectionString: options.connectionString,
    keepAlive: true,
    keepAliveInitialDelayMillis: 1_000,
    connectionTimeoutMillis: queryTimeoutOf(options.checkInterval),
    application_name: 'cluster-steward:singleton',
  });
}

/**
 * Makes the server end this session, and so release its advisory lock, after `sessionTimeout` without a
 * query: a frozen holder's kernel still answers TCP keepalives, so only the server's own timer ends a
 * frozen holder's session. `tcp_user_timeout` also ends it when the server's writes go unacknowledged.
 * Set per session (bound parameters), so the server needs no configuration; PostgreSQL 14 or newer.
 */
async function boundSession(client: Client, checkInterval: number): Promise<void> {
  const { sessionTimeout, standDownAfter } = sessionBounds(checkInterval);
  // statement_timeout: a lock or epoch query blocked on the server ends there too, not only here.
  const bounded = queryWithTimeout(
    client,
    `SELECT set_config('idle_session_timeout', $1, false),
            set_config('idle_in_transaction_session_timeout', $1, false),
            set_config('tcp_user_timeout', $1, false),
            set_config('statement_timeout', $2, false)`,
    [String(sessionTimeout), String(standDownAfter)],
    queryTimeoutOf(checkInterval),
  );
  await bounded.catch((error: unknown) => {
    // undefined_object: without idle_session_timeout nothing would end a frozen holder's session.
    if ((error as { code?: string }).code !== '42704') throw error;
    throw new StewardError(
      'STEWARD_ERR_PG_CONNECTION',
      'Singleton locks need PostgreSQL 14 or newer (idle_session_timeout bounds a frozen holder)',
      { cause: error },
    );
  });
}

/** Connects a dedicated client; a connection error after connect() must never be an unhandled 'error'. */
async function connect(options: SingletonLockOptions): Promise<Client> {
  const client = openClient(options);
  client.on('error', () => {});
  try {
    await client.connect();
    await boundSession(client, options.checkInterval);
  } catch (error) {
    await closeQuietly(client);
    throw error;
  }
  return client;
}

/** One moment on two clocks: the monotonic one keeps running while the process is stopped, the wall clock also through a suspended VM. */
interface Instant {
  monotonic: number;
  wall: number;
}

function now(): Instant {
  return { monotonic: performance.now(), wall: Date.now() };
}

function msSince(instant: Instant): number {
  return Math.max(performance.now() - instant.monotonic, Date.now() - instant.wall);
}

async function tryLock(client: Client, lockKey: string, options: SingletonLockOptions): Promise<boolean> {
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
 * connection (never pooled: a session lock belongs to one backend), then increments the key's epoch.
 * Asks every `checkInterval / 2` on the same connection while another session holds it, and reconnects
 * while the database is unreachable; resolves null once `signal` aborts. While held, a renewal query runs
 * every `checkInterval`; a failed renewal, a connection error or end, or no successful renewal within
 * `sessionBounds(checkInterval).standDownAfter` aborts `lost`. The server ends the session (releasing
 * the lock) when the holder dies, and by itself after `sessionTimeout` without a query: a frozen or
 * cut-off holder has stood down by then.
 */
export async function acquireSingleton(
  options: SingletonLockOptions,
  signal: AbortSignal,
): Promise<SingletonLease | null> {
  validate(options);
  const lockKey = singletonLockKey(options.key);
  let waitingLogged = false;
  let failing = false;
  let client: Client | null = null;
  while (!signal.aborted) {
    try {
      client ??= await connect(options);
      if (await tryLock(client, lockKey, options)) {
        // The epoch query's start is a safe lower bound of when the server last saw this session busy.
        const epochAskedAt = now();
        const fencing = await takeEpoch(client, options);
        if (signal.aborted) break;
        options.logger.info({ key: options.key, epoch: fencing?.epoch }, 'singleton:acquired');
        return holdLease(client, lockKey, options, fencing, epochAskedAt);
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
    // Twice per renewal period: a takeover comes at most half a period after the old session ended.
    await delay(retryIntervalOf(options.checkInterval), signal);
  }
  // Ending the session also releases a lock taken just as the signal aborted.
  if (client) await closeQuietly(client);
  return null;
}

/** The next epoch, on the lock session; a failure ends the session (and the lock) like any other. */
function takeEpoch(client: Client, options: SingletonLockOptions): Promise<FencingToken | null> {
  const location = options.epochTable ?? defaultEpochTable;
  if (location === false) return Promise.resolve(null);
  return nextEpoch(client, location, options.key, `${hostname()}:${process.pid}`);
}

async function unlockAndClose(client: Client, lockKey: string): Promise<void> {
  try {
    await queryWithTimeout(client, 'SELECT pg_advisory_unlock($1::bigint)', [lockKey], 2_000);
  } catch {
    // Closing the session below releases the lock anyway.
  }
  await closeQuietly(client);
}

function holdLease(
  client: Client,
  lockKey: string,
  options: SingletonLockOptions,
  fencing: FencingToken | null,
  renewedAt: Instant,
): SingletonLease {
  const controller = new AbortController();
  const { standDownAfter } = sessionBounds(options.checkInterval);
  let released = false;
  let lastRenewal = renewedAt;
  let renewTimer: NodeJS.Timeout | undefined;

  const lose = (cause: unknown, reason: string) => {
    if (released || controller.signal.aborted) return;
    clearTimeout(renewTimer);
    clearInterval(deadlineTimer);
    options.logger.warn({ key: options.key, reason, err: cause, epoch: fencing?.epoch }, 'singleton:lost');
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

  const late = () => {
    const elapsed = msSince(lastRenewal);
    if (elapsed < standDownAfter) return false;
    lose(undefined, `no renewal for ${Math.round(elapsed)} ms (limit ${standDownAfter} ms)`);
    return true;
  };
  // Short period: after a freeze this is among the first timers to run, before the service's work.
  const deadlineTimer = setInterval(late, Math.max(5, Math.min(100, Math.floor(options.checkInterval / 5))));

  const renew = async () => {
    if (late()) return;
    const sentAt = now();
    try {
      await queryWithTimeout(client, 'SELECT 1', [], queryTimeoutOf(options.checkInterval));
    } catch (error) {
      lose(error, 'renewal failed');
      return;
    }
    // An answer that came back too late proves nothing about now: the deadline decides first.
    if (late()) return;
    lastRenewal = sentAt;
    if (!released && !controller.signal.aborted) renewTimer = setTimeout(renew, options.checkInterval);
  };
  renewTimer = setTimeout(renew, options.checkInterval);

  return {
    lost: controller.signal,
    fencing,
    async release() {
      if (released) return;
      released = true;
      clearTimeout(renewTimer);
      clearInterval(deadlineTimer);
      if (!controller.signal.aborted) await unlockAndClose(client, lockKey);
      options.logger.info({ key: options.key }, 'singleton:released');
    },
  };
}
