import type { QueueNames } from '../identifiers.js';
import m000001 from './000001.js';
import m000002 from './000002.js';
import m000003 from './000003.js';
import m000004 from './000004.js';
import m000005 from './000005.js';

/** Numbered migrations in order; a migration is never edited once released, only followed by a new one. */
export const migrations: ReadonlyArray<{ id: number; sql: (names: QueueNames) => string }> = [
  { id: 1, sql: m000001 },
  { id: 2, sql: m000002 },
  { id: 3, sql: m000003 },
  { id: 4, sql: m000004 },
  { id: 5, sql: m000005 },
];
