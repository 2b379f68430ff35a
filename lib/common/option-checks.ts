import { isAbsolute } from 'node:path';
import { pathToFileURL } from 'node:url';
import { StewardError } from '../errors.js';
import { isSecretKey, REDACTED, redactText } from './redact.js';

/** `-5` (number), `'abc'` (string): how a received value is shown in messages. */
export function describeValue(value: unknown): string {
  if (typeof value === 'function') return `a function`;
  let shown: string;
  try {
    shown = typeof value === 'string' ? `'${value}'` : (JSON.stringify(value) ?? String(value));
  } catch {
    shown = String(value);
  }
  // Before cutting: a URL cut inside its password would no longer look like one.
  shown = redactText(shown);
  if (shown.length > 60) shown = `${shown.slice(0, 57)}...`;
  const type = value === null ? 'null' : Array.isArray(value) ? 'array' : typeof value;
  return `\`${shown}\` (${type})`;
}

/** A value given for a secret-named option (`password`, `control.token`) is shown by its type only. */
function describeSecretAware(name: string, value: unknown): string {
  if (isSecretKey(name.slice(name.lastIndexOf('.') + 1)) && value !== undefined && value !== null)
    return `\`${REDACTED}\` (${Array.isArray(value) ? 'array' : typeof value})`;
  return describeValue(value);
}

/** ``Expected `recycle.maxRequests` to be an integer >= 1, got `-5` (number)``. */
export function invalidOption(name: string, expected: string, value: unknown): StewardError {
  return new StewardError(
    'STEWARD_ERR_INVALID_OPTION',
    `Expected \`${name}\` to be ${expected}, got ${describeSecretAware(name, value)}`,
    { details: { option: name, expected } },
  );
}

/** Two options that are each in range but refuse each other. */
export function optionConflict(message: string, options?: string[]): StewardError {
  return new StewardError(
    'STEWARD_ERR_OPTION_CONFLICT',
    message,
    options ? { details: { options } } : undefined,
  );
}

export function requireObject(name: string, value: unknown): asserts value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw invalidOption(name, 'an object', value);
}

export function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let previous = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const current = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, previous + (a[i - 1] === b[j - 1] ? 0 : 1));
      previous = current;
    }
  }
  return row[b.length]!;
}

export function moduleLocation(name: string, value: unknown): URL {
  if (value instanceof URL) {
    if (value.protocol !== 'file:') throw invalidOption(name, 'a file: URL or an absolute path', value.href);
    return value;
  }
  if (typeof value === 'string' && value.startsWith('file:')) return new URL(value);
  if (typeof value === 'string' && isAbsolute(value)) return pathToFileURL(value);
  throw invalidOption(
    name,
    'a file: URL or an absolute path (ES module: new URL("./services.js", import.meta.url); CommonJS: path.join(__dirname, "services.js"))',
    value,
  );
}
