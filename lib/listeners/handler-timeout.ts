import type { Logger } from 'pino';
import { StewardError } from '../errors.js';

/** What a listener needs to bound one handler run. */
export interface HandlerDeadline {
  /** ms; 0 means no limit. */
  timeout: number;
  /** Aborts the handler's own signal, so a cooperative handler stops its work. */
  abort(reason: Error): void;
  /** Log fields naming the event, for the timeout line and the late settlement line. */
  fields: Record<string, unknown>;
  logger: Logger;
  /** Prefix of the log events: `<prefix>:handler:timeout`, `<prefix>:handler:abandoned:settled`. */
  prefix: string;
}

/**
 * Runs `handler` and settles like it, unless it is still pending after `deadline.timeout`: then rejects
 * with STEWARD_ERR_HANDLER_TIMEOUT, so the listener fails the event (retry or dead letter) and frees its
 * slot, its key and its credit. A promise cannot be cancelled: the stuck one is abandoned, its signal
 * aborted, and its late settlement only logged (its outcome no longer decides anything).
 */
export function runWithTimeout(handler: () => unknown, deadline: HandlerDeadline): Promise<unknown> {
  let work: Promise<unknown>;
  try {
    work = Promise.resolve(handler());
  } catch (error) {
    return Promise.reject(error);
  }
  const { timeout } = deadline;
  if (timeout <= 0) return work;
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const error = new StewardError(
        'STEWARD_ERR_HANDLER_TIMEOUT',
        `The handler did not settle within handlerTimeout (${timeout} ms); its promise is abandoned`,
        { details: { handlerTimeout: timeout } },
      );
      const started = Date.now();
      deadline.logger.warn(
        { ...deadline.fields, handlerTimeout: timeout },
        `${deadline.prefix}:handler:timeout`,
      );
      deadline.abort(error);
      void work
        .then(
          () => false,
          () => true,
        )
        .then((failed) =>
          deadline.logger.info(
            { ...deadline.fields, failed, lateMs: Date.now() - started },
            `${deadline.prefix}:handler:abandoned:settled`,
          ),
        );
      reject(error);
    }, timeout);
  });
  return Promise.race([work, expired]).finally(() => clearTimeout(timer));
}
