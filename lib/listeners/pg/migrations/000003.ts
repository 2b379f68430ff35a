import type { QueueNames } from '../identifiers.js';

/**
 * Leases become HOT updates: no index mentions a lease column any more, and pages keep room for the new
 * row versions, so a claim, a renewal or a hand-back rewrites the row in place instead of adding an entry
 * to every index (half the cost of a claim). The claim no longer needs the index on leased keys: a
 * consumer holds a key's oldest events, so "is this key held elsewhere?" is asked of one neighbouring event
 * (see claim-events.ts). The fill factor applies to pages written from now on.
 */
export default function migration(names: QueueNames): string {
  return `
DROP INDEX IF EXISTS "${names.schema}"."${names.table}_leased_key";
ALTER TABLE ${names.events} SET (fillfactor = 50);
`;
}
