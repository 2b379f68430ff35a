import type { DestinationStream, Logger, LoggerOptions } from 'pino';
import { loadPino } from './load-pino.js';
import { isLogger } from './log-level.js';
import type { LoggerOption } from './logger.js';

/**
 * The services sibling is a plain child process: it cannot receive the application's pino instance, and
 * a transport (a file, a log shipper, pino-pretty) configured in the primary would not see its lines,
 * which would then go to raw stdout beside everything else. So when the application configures logging,
 * the sibling builds its logger from the serialisable part of those options and sends every line to the
 * primary, which writes it to its own destination: one output, as configured.
 */
export const SIBLING_LOGGER_ENV = 'STEWARD_SIBLING_LOGGER';

/** Environment for the sibling: the application's serialisable logger options, when it gave any. */
export function siblingLoggerEnv(option: LoggerOption): Record<string, string> {
  if (option === undefined) return {};
  return { [SIBLING_LOGGER_ENV]: JSON.stringify(serialisableOptions(option)) };
}

/** In the sibling: the options handed over by the primary, or undefined when lines are not relayed. */
export function relayedLoggerOptions(env: NodeJS.ProcessEnv = process.env): LoggerOptions | undefined {
  const raw = env[SIBLING_LOGGER_ENV];
  if (raw === undefined) return undefined;
  try {
    const parsed = JSON.parse(raw) as unknown;
    return typeof parsed === 'object' && parsed !== null ? (parsed as LoggerOptions) : {};
  } catch {
    return {};
  }
}

/**
 * A pino destination that hands each line to `send` (the IPC channel to the primary); once the channel
 * is gone (the primary died) lines go to stdout, so the sibling's last words are not lost.
 */
export function relayDestination(send: (line: string) => boolean): DestinationStream {
  return {
    write(line: string) {
      if (!send(line)) process.stdout.write(line);
    },
  };
}

/** In the primary: writes a relayed line, already formatted by the sibling, to the primary's destination. */
export function writeRelayedLine(logger: Logger, line: string): void {
  const destination = (logger as unknown as Record<symbol, DestinationStream | undefined>)[
    loadPino().symbols.streamSym
  ];
  const text = line.endsWith('\n') ? line : `${line}\n`;
  if (destination) destination.write(text);
  else process.stdout.write(text);
}

function serialisableOptions(option: NonNullable<LoggerOption>): LoggerOptions {
  // A logger instance: its level is what can be read back from it.
  if (isLogger(option)) return { level: option.level };
  const { transport: _primaryOnly, ...rest } = option as LoggerOptions;
  // Functions (formatters, hooks, serializers, mixins) cannot cross a process boundary.
  return JSON.parse(JSON.stringify(rest, (_key, value) => (typeof value === 'function' ? undefined : value)));
}
