import { hostname } from 'node:os';
import type { DestinationStream, Logger, LoggerOptions } from 'pino';
import { guardClosedOutput } from './closed-output.js';
import { loadPino } from './load-pino.js';
import { isLogger, type LoggerOption } from './log-level.js';
import { logFormat, prettyDestination } from './pretty.js';
import { redactingChild } from './redacting-logger.js';

export type { LoggerOption } from './log-level.js';

/** Kept under its first name: `redactSecrets` is part of the public API. */
export { REDACTED, redactDeep, redactText as redactSecrets } from './redact.js';

/** Set on every logger `createLogger` built from options; pino children inherit it (their prototype). */
const LINES_OF_PROCESS = Symbol('cluster-steward.linesOfProcess');

type LinesOfProcess = (pid: number, bindings: Record<string, unknown>) => Logger;

/**
 * Creates the root logger of a process: the user's pino instance if given (as a child, so its own
 * configuration stays), otherwise a new pino logger; either way every line is redacted.
 *
 * A new logger writes pino's per-process fields (its `base`: pid and hostname unless configured) as a
 * child's bindings of a root without them, which is the same line; from that root, `linesOfProcess`
 * writes another process's lines with that process's pid, through this logger's configuration and
 * destination.
 */
export function createLogger(
  option: LoggerOption,
  bindings: Record<string, unknown>,
  /** Where lines go instead of stdout (the services sibling relays them to the primary). */
  destination?: DestinationStream,
): Logger {
  guardClosedOutput();
  if (isLogger(option)) return redactingChild(option, bindings);
  // STEWARD_LOG_LEVEL wins over the options (the CLI's --log-level among them): an operator turns on debug
  // lines without a change to the application.
  const settings: LoggerOptions = {
    ...option,
    level: process.env.STEWARD_LOG_LEVEL ?? option?.level ?? 'info',
  };
  // A transport chosen by the user wins over the format (pino gives `transport` precedence).
  const output = destination ?? (logFormat() === 'pretty' ? prettyDestination() : undefined);
  const pino = loadPino();
  const bare = output ? pino({ ...settings, base: null }, output) : pino({ ...settings, base: null });
  const processFields = processFieldsOf(settings);
  // Redaction is installed on the child, so the user's own logger gets it too.
  const logger = redactingChild(bare.child(processFields), bindings);
  const linesOf: LinesOfProcess = (pid, lineBindings) => {
    const fields = 'pid' in processFields ? { ...processFields, pid } : processFields;
    return redactingChild(bare.child(fields), lineBindings);
  };
  Object.defineProperty(logger, LINES_OF_PROCESS, { value: linesOf });
  return logger;
}

/** What pino writes for its `base` and `name` options (its defaults: the pid and the host name). */
function processFieldsOf(settings: LoggerOptions): Record<string, unknown> {
  const base = settings.base === undefined ? { pid: process.pid, hostname: hostname() } : settings.base;
  if (base === null) return {};
  return settings.name === undefined ? base : { ...base, name: settings.name };
}

/**
 * A logger for the lines another process of this cluster relays (an HTTP worker's, see `worker-log.ts`):
 * configured and redacted as `logger`, with that process's pid. Undefined when `logger` wraps a
 * user's pino instance, whose per-process fields cannot be rewritten: its workers log themselves.
 */
export function linesOfProcess(
  logger: Logger,
  pid: number,
  bindings: Record<string, unknown>,
): Logger | undefined {
  const linesOf = (logger as unknown as Record<symbol, LinesOfProcess | undefined>)[LINES_OF_PROCESS];
  return linesOf?.(pid, bindings);
}

/** Serialisable logger settings handed to child processes that cannot receive a logger instance. */
export function loggerLevelOf(option: LoggerOption): string | undefined {
  if (isLogger(option)) return option.level;
  return option?.level;
}
