import type { QueueNames } from '../identifiers.js';

/**
 * Leased events by key: the claim asks "is another event of this key leased?" for every head of a key,
 * and without this index that question reads every event of the key.
 */
export default function migration(names: QueueNames): string {
  return `
CREATE INDEX "${names.table}_leased_key" ON ${names.events} (type, key)
  WHERE locked_by IS NOT NULL AND key IS NOT NULL;
`;
}
