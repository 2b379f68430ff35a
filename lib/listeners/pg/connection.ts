import type pg from 'pg';
import { StewardError } from '../../errors.js';

/**
 * Runs one query on a dedicated connection and rejects with `STEWARD_ERR_PG_CONNECTION` when it takes
 * longer than `timeoutMs`: a half-open TCP connection otherwise hangs a query forever. The caller must
 * then discard the connection (its protocol state is unknown); `closeQuietly` does that.
 */
export function queryWithTimeout<R extends pg.QueryResultRow = pg.QueryResultRow>(
  client: pg.Client,
  text: string,
  values: unknown[],
  timeoutMs: number,
): Promise<pg.QueryResult<R>> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      reject(
        new StewardError('STEWARD_ERR_PG_CONNECTION', `Query did not answer within ${timeoutMs} ms`, {
          details: { timeoutMs },
        }),
      );
    }, timeoutMs);
    client.query<R>(text, values).then(
      (result) => {
        clearTimeout(timer);
        resolve(result);
      },
      (error: unknown) => {
        clearTimeout(timer);
        reject(error);
      },
    );
  });
}

/** Ends a dedicated connection without waiting more than `timeoutMs` for a dead peer to say goodbye. */
export async function closeQuietly(client: pg.Client, timeoutMs = 2_000): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const ended = client.end().catch(() => {});
  const timedOut = new Promise<void>((resolve) => {
    timer = setTimeout(() => {
      // pg keeps the socket on `connection.stream`; destroying it frees the handle at once.
      (client as unknown as { connection?: { stream?: { destroy(): void } } }).connection?.stream?.destroy();
      resolve();
    }, timeoutMs);
  });
  await Promise.race([ended, timedOut]);
  clearTimeout(timer);
}
