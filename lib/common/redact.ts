/**
 * The one redaction every string leaving a process goes through: log lines (whatever logger wrote
 * them), `/status`, `/healthz`, `/metrics`, ping bodies and the CLI's output. Connection errors quote
 * their URL, handlers log their configuration, and JSON ends up inside error messages, so the rules
 * work on free text as well as on structured values.
 */

export const REDACTED = '***';

/**
 * Names whose values are secrets whatever they contain: `password`, `PGPASSWORD`, `db_password`,
 * `accessToken`, `client_secret`, `apiKey`, `x-api-key`, `authorization`, `credentials`, `cookie`.
 * Anchored at the end so `tokenCount` or `secretary` stay readable. A field named just `pass`
 * (nodemailer's `auth.pass`) counts too; in free text `pass` alone is too common a word.
 */
const SECRET_NAME =
  '(?:password|passwd|passphrase|secret|token|api[_-]?key|access[_-]?key|private[_-]?key|authorization|credentials?|cookie)';
const SECRET_KEY = new RegExp(`^(?:pass|[\\w.-]*?${SECRET_NAME})$`, 'i');

/** `scheme://user:password@host` → `scheme://user:***@host`. */
const URL_CREDENTIALS = /([a-z][a-z0-9+.-]*:\/\/[^:/?#\s@"'\\]*:)([^@/?#\s"'\\]+)(@)/gi;

/**
 * `password=x`, `password: x`, `"password":"x"`, `\"token\":\"x\"` (JSON inside a JSON string),
 * `?api_key=x&`, `Authorization: Bearer x`. Group 1: the key with its quotes and separator; group 2:
 * the value, quoted or bare. A value that opens an object or array is left for the keys inside it.
 */
const KEY_VALUE = new RegExp(
  `((?:\\\\?["'])?\\b[\\w.-]*?${SECRET_NAME}(?:\\\\?["'])?\\s*[=:]\\s*)` +
    `(\\\\"(?:[^"\\\\]|\\\\(?!"))*\\\\"|"(?:[^"\\\\]|\\\\.)*"|'[^']*'|(?:(?:Bearer|Basic)\\s+)?[^\\s;&,}\\]"'\\\\{[][^\\s;&,}\\]"'\\\\]*)`,
  'gi',
);

/** `Bearer <credential>` or `Basic <credential>` on their own, as in a logged header line. */
const AUTH_SCHEME = /\b(Bearer|Basic)(\s+)(?!\*\*\*)[A-Za-z0-9._~+/=-]{8,}/g;

const knownSecrets = new Set<string>();

/**
 * Registers a literal secret (the control token) that is redacted wherever it appears, even where no
 * rule above would spot it. Short values are ignored: replacing a 3-letter word everywhere hides text.
 */
export function registerSecret(secret: string | undefined): void {
  if (secret !== undefined && secret.length >= 8) knownSecrets.add(secret);
}

registerSecret(process.env.STEWARD_CONTROL_TOKEN);

function redactValue(key: string, value: string): string {
  const quote = value.startsWith('\\"') ? '\\"' : value[0] === '"' || value[0] === "'" ? value[0] : '';
  // A JSON key with a bare value (a number, `true`) gets a quoted mask so the document stays JSON.
  const jsonKey = quote === '' && /^\\?"/.test(key) && /"\s*:\s*$/.test(key);
  if (jsonKey) return `${key}"${REDACTED}"`;
  return `${key}${quote}${REDACTED}${quote}`;
}

/** Every rule applied to free text. Idempotent: redacting twice changes nothing more. */
export function redactText(text: string): string {
  let out = text;
  for (const secret of knownSecrets) if (out.includes(secret)) out = out.split(secret).join(REDACTED);
  if (!/[:=]|Bearer|Basic/i.test(out)) return out;
  return out
    .replace(URL_CREDENTIALS, `$1${REDACTED}$3`)
    .replace(AUTH_SCHEME, `$1$2${REDACTED}`)
    .replace(KEY_VALUE, (_match, key: string, value: string) => redactValue(key, value));
}

/** Whether a property name holds a secret whatever its value (`password`, `apiKey`, `authorization`). */
export function isSecretKey(key: string): boolean {
  return SECRET_KEY.test(key);
}

/**
 * A deep copy of a JSON-like value with secret-named fields masked and every string passed through
 * `redactText`. Errors keep their prototype (pino's serializer still sees an Error) and have their
 * message, stack, cause chain and `errors` redacted. Objects with `toJSON` (URL, Date) are redacted
 * as what they serialise to.
 */
export function redactDeep<T>(value: T): T {
  return redactAny(value, new WeakSet(), 0) as T;
}

const MAX_DEPTH = 10;

function redactAny(value: unknown, seen: WeakSet<object>, depth: number): unknown {
  if (typeof value === 'string') return redactText(value);
  if (value === null || typeof value !== 'object') return value;
  if (seen.has(value) || depth > MAX_DEPTH) return '[Circular or too deep]';
  seen.add(value);
  try {
    if (Array.isArray(value)) return value.map((item) => redactAny(item, seen, depth + 1));
    if (value instanceof Error) return redactError(value, seen, depth);
    if (Buffer.isBuffer(value) || ArrayBuffer.isView(value)) return value;
    const toJSON = (value as { toJSON?: unknown }).toJSON;
    if (typeof toJSON === 'function') return redactAny(toJSON.call(value), seen, depth + 1);
    if (value instanceof Map) return redactAny(Object.fromEntries(value), seen, depth + 1);
    if (value instanceof Set) return redactAny([...value], seen, depth + 1);
    return redactFields(value as Record<string, unknown>, seen, depth);
  } finally {
    seen.delete(value);
  }
}

function redactFields(value: Record<string, unknown>, seen: WeakSet<object>, depth: number) {
  const out: Record<string, unknown> = {};
  for (const [key, item] of Object.entries(value)) {
    const masked = isSecretKey(key) && item !== null && item !== undefined;
    out[key] = masked ? REDACTED : redactAny(item, seen, depth + 1);
  }
  return out;
}

function redactError(error: Error, seen: WeakSet<object>, depth: number): Error {
  const copy = Object.create(Object.getPrototypeOf(error)) as Record<string, unknown>;
  const source = error as unknown as Record<string, unknown>;
  for (const key of Object.getOwnPropertyNames(error)) {
    const item = source[key];
    Object.defineProperty(copy, key, {
      value: isSecretKey(key) && item != null ? REDACTED : redactAny(item, seen, depth + 1),
      writable: true,
      configurable: true,
      // `message` and `stack` are not enumerable on an Error; serializers read them by name.
      enumerable: Object.getOwnPropertyDescriptor(error, key)?.enumerable ?? true,
    });
  }
  return copy as unknown as Error;
}
