import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { coerceError, errorCodes, StewardError, serializeError } from '../lib/errors.js';

test('the error registry and docs/errors.md list the same codes', () => {
  const doc = readFileSync(new URL('../docs/errors.md', import.meta.url), 'utf8');
  const documented = [...doc.matchAll(/^## (STEWARD_ERR_[A-Z_]+)\s*$/gm)].map((match) => match[1]);
  assert.deepEqual([...documented].sort(), Object.keys(errorCodes).sort());
});

test('StewardError carries its code, details and cause', () => {
  const cause = new Error('root');
  const error = new StewardError('STEWARD_ERR_BOOT_TIMEOUT', 'too slow', { cause, details: { ms: 5 } });
  assert.equal(error.code, 'STEWARD_ERR_BOOT_TIMEOUT');
  assert.equal(error.cause, cause);
  assert.deepEqual(error.details, { ms: 5 });
  assert.equal(serializeError(error).code, 'STEWARD_ERR_BOOT_TIMEOUT');
});

test('coerceError normalises anything thrown', () => {
  assert.equal(coerceError('text').message, 'text');
  assert.equal(coerceError({ a: 1 }).message, 'Non-error thrown: {"a":1}');
  const circular: Record<string, unknown> = {};
  circular.self = circular;
  assert.match(coerceError(circular).message, /Non-error thrown/);
  const error = new TypeError('kept');
  assert.equal(coerceError(error), error);
});
