import { invalidOption } from '../common/option-checks.js';
import { duration, type Input, option, type Resolved, resolveSpec } from '../common/option-spec.js';
import { connectionString, identifier } from '../common/pg-options.js';
import { defaultEpochTable, type EpochTable } from './lease.js';

const KEY_EXPECTED = 'a string of 1 to 256 characters';

const epochTableSpec = {
  schema: identifier(defaultEpochTable.schema),
  table: identifier(defaultEpochTable.table),
};

/** Settings of a `singleton` service's PostgreSQL advisory lock (also of `acquireSingleton()`). */
export const singletonSpec = {
  /** PostgreSQL connection string for the dedicated lock connection. */
  connectionString,
  /** Lock name; hashed to the advisory lock key. @default the service name */
  key: option<string, string | undefined>({
    kind: 'string',
    expected: KEY_EXPECTED,
    parse(name, value) {
      if (typeof value !== 'string' || value.length === 0 || value.length > 256)
        throw invalidOption(name, KEY_EXPECTED, value);
      return value;
    },
  }),
  /**
   * How often the holder renews the lock, in ms or `'1s'`; a standby host asks for it twice as often. The
   * server ends a silent holder's session after max(3 × checkInterval, 1500) ms; the holder stands down
   * earlier. @default 750
   */
  checkInterval: duration({ min: 10, default: 750 }),
  /**
   * Where each acquisition increments the lock's epoch (`ctx.fencing`); created on first use. `false`
   * hands out no fencing token. @default { schema: 'public', table: 'steward_singleton_epochs' }
   */
  epochTable: option<Partial<EpochTable> | false, EpochTable | false>({
    kind: 'group',
    expected: '{ schema, table } or false',
    default: defaultEpochTable,
    parse: (name, value) => (value === false ? false : resolveSpec(epochTableSpec, value, name)),
  }),
};

export type SingletonOptions = Input<typeof singletonSpec>;
export type ResolvedSingleton = Resolved<typeof singletonSpec>;

/** Checks a singleton's settings, naming each as `<name>.<option>`. */
export function resolveSingleton(input: unknown, name = 'singleton'): ResolvedSingleton {
  return resolveSpec(singletonSpec, input, name);
}
