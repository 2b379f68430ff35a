import type { QueueNames } from '../identifiers.js';

/**
 * The index the claim probes for every keyed candidate (is an older event of its key not held here? is
 * the next one held elsewhere?) compares type and key in byte order: with the database's collation each
 * comparison of a descent goes through the locale, about a fifth of a claim's work for 1,000 keyed events.
 * Equality is the same in both (deterministic collations), so what the queries find does not change.
 * Building it blocks enqueues on the table for as long as the build takes.
 */
export default function migration(names: QueueNames): string {
  return `
CREATE INDEX "${names.table}_type_key_id_c" ON ${names.events} (type COLLATE "C", key COLLATE "C", id)
  WHERE key IS NOT NULL;
DROP INDEX IF EXISTS "${names.schema}"."${names.table}_type_key_id";
`;
}
