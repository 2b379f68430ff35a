import { duration, required, resolveSpec, type Spec, text } from '../../common/option-spec.js';
import { backoff } from '../../common/option-spec-backoff.js';
import { connectionString } from '../../common/pg-options.js';
import type { ServiceOptions } from '../../services/types.js';

/** Keys every service factory passes through to the service host. */
export const SERVICE_KEYS = ['restart', 'stallTimeout', 'stopTimeout', 'singleton'] as const;

function pickServiceOptions(raw: Record<string, unknown>): ServiceOptions {
  const picked: Record<string, unknown> = {};
  for (const key of SERVICE_KEYS) if (raw[key] !== undefined) picked[key] = raw[key];
  return picked as ServiceOptions;
}

/** The options every PostgreSQL listener starts with: its service name and where it connects. */
export const pgServiceSpec = {
  name: required(text(undefined, 'a non-empty service name')),
  /** PostgreSQL connection string (`postgres://user:password@host:port/database` or libpq key=value pairs). */
  connectionString,
};

/** The options of a LISTEN connection, the same in the event queue and the notify listener. */
export const listenSpec = {
  /** Period of the liveness query on the LISTEN connection, in ms or `'10s'`. @default 10000 */
  checkInterval: duration({ min: 100, default: 10_000 }),
  /** A liveness query or connect slower than this drops the LISTEN connection, in ms or `'5s'`. @default 5000 */
  checkTimeout: duration({ min: 100, default: 5_000 }),
  /**
   * Reconnect backoff (jittered, forever); the low ceiling makes the listener work again within about a
   * second of the database's return, whatever the outage length. @default { initialDelay: 100, maxDelay: 1000, jitter: 0.5 }
   */
  reconnect: backoff({ initialDelay: 100, maxDelay: 1_000, jitter: 0.5 }),
};

/** Resolves a PostgreSQL listener's spec; the service host's options pass through untouched. */
export function resolvePgService<S extends Spec>(spec: S, input: unknown) {
  const resolved = resolveSpec(spec, input, 'options', { passthrough: SERVICE_KEYS });
  return { ...resolved, service: pickServiceOptions(input as Record<string, unknown>) };
}
