import type { QueueNames } from '../identifiers.js';

/** Events, their dead-letter table, and the indexes the claim query relies on. */
export default function migration(names: QueueNames): string {
  const t = names.table;
  return `
CREATE TABLE ${names.events} (
  id bigserial PRIMARY KEY,
  type text NOT NULL,
  key text,
  payload jsonb NOT NULL DEFAULT 'null',
  created_at timestamptz NOT NULL DEFAULT now(),
  run_at timestamptz NOT NULL DEFAULT now(),
  attempts integer NOT NULL DEFAULT 0,
  last_error text,
  locked_by text,
  locked_until timestamptz
);
-- The ordering check ("no older event of this type and key") and coalescing look events up by key.
CREATE INDEX "${t}_type_key_id" ON ${names.events} (type, key, id) WHERE key IS NOT NULL;
CREATE TABLE ${names.dead} (
  id bigint PRIMARY KEY,
  type text NOT NULL,
  key text,
  payload jsonb NOT NULL,
  created_at timestamptz NOT NULL,
  failed_at timestamptz NOT NULL DEFAULT now(),
  attempts integer NOT NULL,
  last_error text
);
`;
}
