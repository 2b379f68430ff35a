import type { BackoffOptions } from '../../common/backoff.js';
import {
  durationOption,
  invalidOption,
  numberOption,
  rejectUnknownKeys,
  requireObject,
} from '../../options.js';
import type { ServiceOptions } from '../../services/types.js';

/** Keys every service factory passes through to the service host. */
export const SERVICE_KEYS = ['restart', 'stallTimeout', 'stopTimeout', 'singleton'] as const;

export function pickServiceOptions(raw: Record<string, unknown>): ServiceOptions {
  const picked: Record<string, unknown> = {};
  for (const key of SERVICE_KEYS) if (raw[key] !== undefined) picked[key] = raw[key];
  return picked as ServiceOptions;
}

export function nameOption(raw: Record<string, unknown>): string {
  if (typeof raw.name !== 'string' || raw.name.length === 0)
    throw invalidOption('name', 'a non-empty service name', raw.name);
  return raw.name;
}

export function connectionStringOption(raw: Record<string, unknown>): string {
  const value = raw.connectionString;
  // The value is never shown: it may carry a password.
  if (typeof value !== 'string' || value.length === 0)
    throw invalidOption('connectionString', 'a non-empty PostgreSQL connection string', typeof value);
  return value;
}

/** `{ initialDelay, maxDelay, jitter }` with defaults, checked together. */
export function backoffOption(name: string, raw: unknown, defaults: BackoffOptions): BackoffOptions {
  if (raw === undefined) return { ...defaults };
  requireObject(name, raw);
  rejectUnknownKeys(raw, ['initialDelay', 'maxDelay', 'jitter'], `${name}.`);
  const resolved = {
    initialDelay:
      raw.initialDelay === undefined
        ? defaults.initialDelay
        : durationOption(`${name}.initialDelay`, raw.initialDelay, 0),
    maxDelay:
      raw.maxDelay === undefined ? defaults.maxDelay : durationOption(`${name}.maxDelay`, raw.maxDelay, 0),
    jitter: raw.jitter === undefined ? defaults.jitter : numberOption(`${name}.jitter`, raw.jitter, 0, 1),
  };
  if (resolved.maxDelay < resolved.initialDelay)
    throw invalidOption(
      `${name}.maxDelay`,
      `>= \`${name}.initialDelay\` (${resolved.initialDelay})`,
      resolved.maxDelay,
    );
  return resolved;
}
