import { StewardError } from '../errors.js';

/** A plain SQL identifier: letters, digits and underscores, not starting with a digit. */
const IDENTIFIER = /^[a-z_][a-z0-9_]*$/i;
/** PostgreSQL truncates identifiers at 63 bytes. */
export const MAX_IDENTIFIER_LENGTH = 63;
/**
 * Checks a schema or table name and returns it double-quoted. Names are validated, never escaped:
 * anything but a plain identifier is refused with `STEWARD_ERR_INVALID_IDENTIFIER`.
 */
export function quoteIdentifier(option: string, name: unknown, maxLength = MAX_IDENTIFIER_LENGTH): string {
  if (typeof name !== 'string' || !IDENTIFIER.test(name) || name.length > maxLength) {
    throw new StewardError(
      'STEWARD_ERR_INVALID_IDENTIFIER',
      `Expected \`${option}\` to be a plain SQL identifier (letters, digits, _; not starting with a digit; at most ${maxLength} characters), got ${JSON.stringify(name) ?? String(name)}`,
      { details: { option, maxLength } },
    );
  }
  return `"${name}"`;
}
