import pino, { type DestinationStream, type Logger, type LoggerOptions } from 'pino';
import { guardClosedOutput } from './closed-output.js';
import { logFormat, prettyDestination } from './pretty.js';

/** `scheme://user:password@host` → `scheme://user:***@host`, anywhere in a string. */
const URL_CREDENTIALS = /([a-z][a-z0-9+.-]*:\/\/[^:/?#\s@]*:)([^@/?#\s]+)(@)/gi;
/** `password=...` in libpq-style connection strings. */
const KEY_VALUE_PASSWORD = /(\bpassword\s*=\s*)('[^']*'|[^\s;]+)/gi;

export const REDACTED = '***';

/** Hides passwords in connection URLs and `password=` pairs; logs and /status never show secrets. */
export function redactSecrets(text: string): string {
  return text.replace(URL_CREDENTIALS, `$1${REDACTED}$3`).replace(KEY_VALUE_PASSWORD, `$1${REDACTED}`);
}

/** Deep copy of a JSON-like value with every string passed through `redactSecrets`. */
export function redactDeep<T>(value: T, depth = 0): T {
  if (typeof value === 'string') return redactSecrets(value) as T;
  if (depth > 8 || value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map((item) => redactDeep(item, depth + 1)) as T;
  if (value instanceof Error) return redactError(value, depth) as T;
  const out: Record<string, unknown> = {};
  for (const [key, item] of Object.entries(value)) out[key] = redactDeep(item, depth + 1);
  return out as T;
}

/**
 * A copy of an error (same prototype, so pino's `err` serializer still treats it as one) whose message,
 * stack and other own fields are redacted: a connection error's message often carries the URL.
 */
function redactError(error: Error, depth: number): Error {
  const copy = Object.create(Object.getPrototypeOf(error)) as Record<string, unknown>;
  for (const key of Object.getOwnPropertyNames(error)) {
    copy[key] = redactDeep((error as unknown as Record<string, unknown>)[key], depth + 1);
  }
  return copy as unknown as Error;
}

/** Keys whose values are secrets whatever they contain. */
const SECRET_PATHS = [
  'password',
  '*.password',
  '*.*.password',
  'token',
  '*.token',
  'authorization',
  '*.authorization',
];

/** A pino logger (used as a parent: its configuration stays) or pino options for a new one. */
export type LoggerOption = Logger | LoggerOptions | undefined;

function isLogger(value: unknown): value is Logger {
  return typeof value === 'object' && value !== null && typeof (value as Logger).child === 'function';
}

/**
 * Creates the root logger of a process: the user's pino instance if given (as a child, so its own
 * configuration stays), otherwise a new pino logger with secret redaction.
 */
export function createLogger(
  option: LoggerOption,
  bindings: Record<string, unknown>,
  /** Where lines go instead of stdout (the services sibling relays them to the primary). */
  destination?: DestinationStream,
): Logger {
  guardClosedOutput();
  if (isLogger(option)) return option.child(bindings);
  const base: LoggerOptions = {
    level: process.env.STEWARD_LOG_LEVEL ?? option?.level ?? 'info',
    ...option,
    redact: option?.redact ?? { paths: SECRET_PATHS, censor: REDACTED },
    formatters: {
      ...option?.formatters,
      log: (object) => redactDeep(option?.formatters?.log ? option.formatters.log(object) : object),
    },
    hooks: {
      ...option?.hooks,
      logMethod(args, method) {
        // An Error logged alone becomes the message too (pino takes `err.message`): redact it here.
        const redacted = args.map((arg) =>
          typeof arg === 'string' ? redactSecrets(arg) : arg instanceof Error ? redactDeep(arg) : arg,
        );
        return method.apply(this, redacted as Parameters<typeof method>);
      },
    },
  };
  // A transport chosen by the user wins over the format (pino gives `transport` precedence).
  const output = destination ?? (logFormat() === 'pretty' ? prettyDestination() : undefined);
  return (output ? pino(base, output) : pino(base)).child(bindings);
}

/** Serialisable logger settings handed to child processes that cannot receive a logger instance. */
export function loggerLevelOf(option: LoggerOption): string | undefined {
  if (isLogger(option)) return option.level;
  return option?.level;
}
