import type { BackoffOptions } from '../../common/backoff.js';
import { StewardError } from '../../errors.js';
import {
  durationOption,
  invalidOption,
  numberOption,
  rejectUnknownKeys,
  requireObject,
} from '../../options.js';
import type { ServiceOptions } from '../../services/types.js';

/** Keys every service factory passes through to the service host. */
export const SERVICE_KEYS = ['restart', 'stallTimeout', 'stopTimeout', 'singleton'] as const;

export function pickServiceOptions(raw: Record<string, unknown>): ServiceOptions {
  const picked: Record<string, unknown> = {};
  for (const key of SERVICE_KEYS) if (raw[key] !== undefined) picked[key] = raw[key];
  return picked as ServiceOptions;
}

export function nameOption(raw: Record<string, unknown>): string {
  if (typeof raw.name !== 'string' || raw.name.length === 0)
    throw invalidOption('name', 'a non-empty service name', raw.name);
  return raw.name;
}

const CONNECTION_STRING_FORMS =
  'a PostgreSQL connection string (postgres://user:password@host:port/database, or libpq key=value pairs)';

/** The received value is only described, never shown. */
function badConnectionString(option: string, received: string): StewardError {
  return new StewardError(
    'STEWARD_ERR_INVALID_OPTION',
    `Expected \`${option}\` to be ${CONNECTION_STRING_FORMS}, got ${received}`,
    { details: { option, expected: CONNECTION_STRING_FORMS } },
  );
}

/**
 * Checks a connection string where it is taken. The value is never shown (it may carry a password): an
 * unset one says so, a malformed one shows only its scheme. A URL must have `//` and a host (or a
 * `host=` query parameter for a socket directory): pg reads `postgres:/u:pw@host` as a database path and
 * would connect to the local default server instead.
 */
export function connectionStringOption(raw: Record<string, unknown>, option = 'connectionString'): string {
  const value = raw[option];
  if (value === undefined || value === null)
    throw new StewardError(
      'STEWARD_ERR_INVALID_OPTION',
      `\`${option}\` is not set: expected ${CONNECTION_STRING_FORMS} (is the environment variable it comes from defined?)`,
      { details: { option, expected: CONNECTION_STRING_FORMS } },
    );
  if (typeof value !== 'string' || value.trim().length === 0)
    throw badConnectionString(
      option,
      typeof value === 'string' ? 'an empty string' : `a value of type ${typeof value}`,
    );
  const scheme = /^([a-z][a-z0-9+.-]*):/i.exec(value)?.[1]?.toLowerCase();
  if (scheme === undefined) {
    if (!/^\s*\w+\s*=/.test(value))
      throw badConnectionString(option, 'a string that is neither a URL nor key=value pairs');
    return value;
  }
  if (scheme !== 'postgres' && scheme !== 'postgresql')
    throw badConnectionString(option, `a URL with the scheme \`${scheme}:\``);
  let url: URL | undefined;
  try {
    url = /^[a-z]+:\/\//i.test(value) ? new URL(value) : undefined;
  } catch {
    url = undefined;
  }
  if (url === undefined || (url.hostname === '' && !url.searchParams.has('host')))
    throw badConnectionString(option, `a malformed \`${scheme}:\` URL (no \`//host\`)`);
  return value;
}

/** `{ initialDelay, maxDelay, jitter }` with defaults, checked together. */
export function backoffOption(name: string, raw: unknown, defaults: BackoffOptions): BackoffOptions {
  if (raw === undefined) return { ...defaults };
  requireObject(name, raw);
  rejectUnknownKeys(raw, ['initialDelay', 'maxDelay', 'jitter'], `${name}.`);
  const resolved = {
    initialDelay:
      raw.initialDelay === undefined
        ? defaults.initialDelay
        : durationOption(`${name}.initialDelay`, raw.initialDelay, 0),
    maxDelay:
      raw.maxDelay === undefined ? defaults.maxDelay : durationOption(`${name}.maxDelay`, raw.maxDelay, 0),
    jitter: raw.jitter === undefined ? defaults.jitter : numberOption(`${name}.jitter`, raw.jitter, 0, 1),
  };
  if (resolved.maxDelay < resolved.initialDelay)
    throw invalidOption(
      `${name}.maxDelay`,
      `>= \`${name}.initialDelay\` (${resolved.initialDelay})`,
      resolved.maxDelay,
    );
  return resolved;
}
