import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { LoggerOptions } from 'pino';
import { usageError } from './flags.js';

const LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

export const LOG_LEVEL_HELP = `${LEVELS.join('|')} (default: info, or STEWARD_LOG_LEVEL)`;

/** A module path from the command line, relative to the working directory, that must exist. */
export function existingModule(path: string, what: string): URL {
  const absolute = resolve(process.cwd(), path);
  if (!existsSync(absolute)) throw usageError(`The ${what} ${absolute} does not exist`, { path: absolute });
  return pathToFileURL(absolute);
}

/** `--log-level` as pino options (STEWARD_LOG_LEVEL in the environment still wins, as everywhere). */
export function loggerFlag(level: unknown): LoggerOptions | undefined {
  if (level === undefined) return undefined;
  if (typeof level !== 'string' || !LEVELS.includes(level)) {
    throw usageError(`Expected \`--log-level\` to be one of ${LEVELS.join(', ')}, got '${String(level)}'`, {
      flag: '--log-level',
    });
  }
  return { level };
}
