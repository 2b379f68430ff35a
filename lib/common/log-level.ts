import type { Logger, LoggerOptions } from 'pino';

/** A pino logger (used as a parent: its configuration stays) or pino options for a new one. */
export type LoggerOption = Logger | LoggerOptions | undefined;

/** A logger instance rather than options for a new one. */
export function isLogger(value: unknown): value is Logger {
  return typeof value === 'object' && value !== null && typeof (value as Logger).child === 'function';
}

/** pino's level values. */
export const LEVEL_VALUES: Readonly<Record<string, number>> = {
  trace: 10,
  debug: 20,
  info: 30,
  warn: 40,
  error: 50,
  fatal: 60,
  silent: Number.POSITIVE_INFINITY,
};

/**
 * The lowest level value `createLogger` would write for `option`, or undefined when that cannot be told
 * without pino: a logger instance, or custom levels. Apart from `logger.ts`, so that an HTTP worker can
 * tell which of its lines to send to the primary without loading the logger's modules.
 */
export function levelThresholdOf(option: LoggerOption): number | undefined {
  if (isLogger(option) || option?.customLevels !== undefined) return undefined;
  const level = process.env.STEWARD_LOG_LEVEL ?? option?.level ?? 'info';
  return LEVEL_VALUES[level];
}
