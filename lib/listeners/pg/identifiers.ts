import { createHash } from 'node:crypto';
import { MAX_IDENTIFIER_LENGTH, quoteIdentifier } from '../../common/sql-identifier.js';

/** The longest suffix added to the table name (`_migrations`), so derived names stay whole. */
const TABLE_SUFFIX_ROOM = '_migrations'.length;

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
  quoteIdentifier('table', table, MAX_IDENTIFIER_LENGTH - TABLE_SUFFIX_ROOM);
  const name = table as string;
  const plainSchema = schema as string;
  const lock = createHash('sha256').update(`cluster-steward:migrate:${plainSchema}.${name}`).digest();
  return {
    schema: plainSchema,
    table: name,
    events: `${s}."${name}"`,
    dead: `${s}."${name}_dead"`,
    migrations: `${s}."${name}_migrations"`,
    channel: `${plainSchema}.${name}`.slice(0, MAX_IDENTIFIER_LENGTH),
    migrationLock: lock.readBigInt64BE(0).toString(),
  };
}
