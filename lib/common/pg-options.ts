/** Option specs for PostgreSQL settings, shared by the listeners and the singleton lease. */

import { StewardError } from '../errors.js';
import { option, required } from './option-spec.js';
import { quoteIdentifier } from './sql-identifier.js';

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
function checkConnectionString(option: string, value: unknown): string {
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

/**
 * A schema or table name, written into SQL text: a plain identifier or STEWARD_ERR_INVALID_IDENTIFIER.
 * (A queue's table is checked again with its other names, leaving room for the `_dead` suffix.)
 */
export function identifier(defaultValue: string) {
  return option<string, string>({
    kind: 'string',
    expected: 'a plain SQL identifier',
    default: defaultValue,
    parse: (name, value) => {
      quoteIdentifier(name, value);
      return value as string;
    },
  });
}

/** A PostgreSQL connection string, checked where it is taken and never shown. */
export const connectionString = required(
  option<string, string>({ kind: 'string', expected: CONNECTION_STRING_FORMS, parse: checkConnectionString }),
);
