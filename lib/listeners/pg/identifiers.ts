import { createHash } from 'node:crypto';
import { StewardError } from '../../errors.js';

/** A plain SQL identifier: letters, digits and underscores, not starting with a digit. */
const IDENTIFIER = /^[a-z_][a-z0-9_]*$/i;
/** PostgreSQL truncates identifiers at 63 bytes. */
const MAX_LENGTH = 63;
/** The longest suffix added to the table name (`_migrations`), so derived names stay whole. */
const TABLE_SUFFIX_ROOM = '_migrations'.length;

/**
 * Checks a schema or table name and returns it double-quoted. Names are validated, never escaped:
 * anything but a plain identifier is refused with `STEWARD_ERR_INVALID_IDENTIFIER`.
 */
export function quoteIdentifier(option: string, name: unknown, maxLength = MAX_LENGTH): string {
  if (typeof name !== 'string' || !IDENTIFIER.test(name) || name.length > maxLength) {
    throw new StewardError(
      'STEWARD_ERR_INVALID_IDENTIFIER',
      `Expected \`${option}\` to be a plain SQL identifier (letters, digits, _; not starting with a digit; at most ${maxLength} characters), got ${JSON.stringify(name) ?? String(name)}`,
      { details: { option, maxLength } },
    );
  }
  return `"${name}"`;
}

/** Every name the queue uses in SQL, validated and quoted once. */
export interface QueueNames {
  schema: string;
  table: string;
  /** `"schema"."table"`: the events. */
  events: string;
  /** `"schema"."table_dead"`: events that exhausted `maxAttempts`. */
  dead: string;
  /** `"schema"."table_migrations"`: applied migration numbers. */
  migrations: string;
  /** NOTIFY channel that wakes the consumers of this table (a bound parameter, never interpolated). */
  channel: string;
  /** 64-bit advisory lock key serialising migrations of this table. */
  migrationLock: string;
}

/**
 * The validated, quoted names of a queue (events, dead-letter and migrations tables, NOTIFY channel,
 * migration lock key); throws `STEWARD_ERR_INVALID_IDENTIFIER` for anything but plain identifiers.
 */
export function queueNames(schema: unknown, table: unknown): QueueNames {
  const s = quoteIdentifier('schema', schema);
  quoteIdentifier('table', table, MAX_LENGTH - TABLE_SUFFIX_ROOM);
  const name = table as string;
  const plainSchema = schema as string;
  const lock = createHash('sha256').update(`cluster-steward:migrate:${plainSchema}.${name}`).digest();
  return {
    schema: plainSchema,
    table: name,
    events: `${s}."${name}"`,
    dead: `${s}."${name}_dead"`,
    migrations: `${s}."${name}_migrations"`,
    channel: `${plainSchema}.${name}`.slice(0, MAX_LENGTH),
    migrationLock: lock.readBigInt64BE(0).toString(),
  };
}
