import type pg from 'pg';
import { type BackoffOptions, backoffDelay, delay } from '../../common/backoff.js';
import type { ServiceContext } from '../../services/types.js';
import type { ListenerHealth } from '../listener-health.js';
import { isPermanentConnectionFailure, pgConnectionError } from './connection-error.js';

/**
 * Waits until the database answers `SELECT 1` through `pool`, retrying with `backoff` (capped low, so a
 * database that comes back is seen within about a second) for as long as the failure may pass: a
 * service started before its database waits instead of crashing into its host's restart backoff. A
 * failure no wait can fix (bad password, unknown database or host) rejects with STEWARD_ERR_PG_CONNECTION.
 * Resolves false when `ctx.signal` aborted first.
 */
export async function waitForDatabase(
  pool: pg.Pool,
  connectionString: string,
  backoff: BackoffOptions,
  ctx: ServiceContext,
  health: ListenerHealth,
): Promise<boolean> {
  for (let attempt = 0; !ctx.signal.aborted; attempt++) {
    try {
      await pool.query('SELECT 1');
      return true;
    } catch (thrown) {
      const error = pgConnectionError(connectionString, thrown);
      if (isPermanentConnectionFailure(thrown)) throw error;
      health.disconnected(error);
      const delayMs = backoffDelay(attempt, backoff);
      // The first failure is worth a warning; the rest of the wait shows in health and at debug level.
      if (attempt === 0) ctx.logger.warn({ err: error, delayMs }, 'queue:database:waiting');
      else ctx.logger.debug({ err: error, delayMs, attempt }, 'queue:database:waiting');
      await delay(delayMs, ctx.signal);
    }
  }
  return false;
}
