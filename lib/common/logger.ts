import { createRequire } from 'node:module';
import type pinoModule from 'pino';
import type { DestinationStream, Logger, LoggerOptions } from 'pino';
import { guardClosedOutput } from './closed-output.js';
import { logFormat, prettyDestination } from './pretty.js';
import { redactingChild } from './redacting-logger.js';

/**
 * Required rather than imported: an ES module importing a CommonJS package makes Node scan the package's
 * source for its export names (cjs-module-lexer) and wrap it, a few ms of CPU in every HTTP worker's start,
 * so in every recycle. Everything used here hangs off the one function pino exports.
 */
const pino = createRequire(import.meta.url)('pino') as typeof pinoModule;

/** Kept under its first name: `redactSecrets` is part of the public API. */
export { REDACTED, redactDeep, redactText as redactSecrets } from './redact.js';

/** A pino logger (used as a parent: its configuration stays) or pino options for a new one. */
export type LoggerOption = Logger | LoggerOptions | undefined;

function isLogger(value: unknown): value is Logger {
  return typeof value === 'object' && value !== null && typeof (value as Logger).child === 'function';
}

/**
 * Creates the root logger of a process: the user's pino instance if given (as a child, so its own
 * configuration stays), otherwise a new pino logger; either way every line is redacted.
 */
export function createLogger(
  option: LoggerOption,
  bindings: Record<string, unknown>,
  /** Where lines go instead of stdout (the services sibling relays them to the primary). */
  destination?: DestinationStream,
): Logger {
  guardClosedOutput();
  let root: Logger;
  if (isLogger(option)) root = option;
  else {
    const base: LoggerOptions = {
      level: process.env.STEWARD_LOG_LEVEL ?? option?.level ?? 'info',
      ...option,
    };
    // A transport chosen by the user wins over the format (pino gives `transport` precedence).
    const output = destination ?? (logFormat() === 'pretty' ? prettyDestination() : undefined);
    root = output ? pino(base, output) : pino(base);
  }
  // Redaction is installed on the child, so the user's own logger gets it too.
  return redactingChild(root, bindings);
}

/** Serialisable logger settings handed to child processes that cannot receive a logger instance. */
export function loggerLevelOf(option: LoggerOption): string | undefined {
  if (isLogger(option)) return option.level;
  return option?.level;
}
