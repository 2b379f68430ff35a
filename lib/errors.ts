/**
 * Every error cluster-steward throws on purpose has a stable code from this registry.
 * `docs/errors.md` documents each code; `test/errors.test.ts` keeps the two in sync.
 */
export const errorCodes = {
  STEWARD_ERR_INVALID_OPTION: 'An option has a value outside its accepted range or of the wrong type.',
  STEWARD_ERR_UNKNOWN_OPTION:
    'An option key is not known (often a typo; the message suggests the closest name).',
  STEWARD_ERR_OPTION_CONFLICT: 'Two options that cannot be combined were both given.',
  STEWARD_ERR_WORKER_BOOT:
    'A worker failed to start: its start function threw or it exited before listening.',
  STEWARD_ERR_BOOT_TIMEOUT: 'A worker did not report ready within `bootTimeout`.',
  STEWARD_ERR_CRASH_LOOP:
    'Workers crashed more often than the restart intensity allows while none was ready.',
  STEWARD_ERR_IPC_TIMEOUT: 'An IPC request got no reply within its timeout.',
  STEWARD_ERR_IPC_PEER_GONE: 'The peer process of an IPC request exited or disconnected before replying.',
  STEWARD_ERR_SERVICES_MODULE:
    'The services module could not be loaded or does not export `defineServices(...)`.',
  STEWARD_ERR_SERVICE_INVALID: 'A service definition is not `{ name, run }` or its name is not unique.',
  STEWARD_ERR_SERVICE_STOP_TIMEOUT: 'A service did not settle within `stopTimeout` after its signal aborted.',
  STEWARD_ERR_SERVICE_STALLED: 'A service reported no progress within `stallTimeout` while it had work.',
  STEWARD_ERR_INVALID_IDENTIFIER: 'A SQL schema or table name is not a plain identifier.',
  STEWARD_ERR_NO_HANDLER:
    'Queued events have a type this consumer has no handler for; they wait for one that has.',
  STEWARD_ERR_HANDLER_TIMEOUT:
    'An event handler did not settle within `handlerTimeout`: the event failed and its promise was abandoned.',
  STEWARD_ERR_AMQP_CONNECTION:
    'The AMQP connection failed in a way retrying cannot fix (for example authentication).',
  STEWARD_ERR_PG_CONNECTION: 'A dedicated PostgreSQL connection was lost or failed its liveness check.',
  STEWARD_ERR_CONTROL_AUTH: 'A control server request lacked the configured bearer token.',
  STEWARD_ERR_CONTROL_LISTEN: 'The control server could not listen on its host and port.',
  STEWARD_ERR_CONTROL_UNPROTECTED:
    'The control server would listen on a non-loopback address without a token, and `control.allowUnauthenticated` is not set.',
  STEWARD_ERR_CLI_USAGE: 'The command line has an unknown command, an unknown flag or a bad flag value.',
  STEWARD_ERR_SINGLETON_FENCED:
    'A write checked a singleton fencing token that is stale: a newer holder of the lock exists.',
} as const;

/** Every `STEWARD_ERR_*` code; each is documented in docs/errors.md. */
export type ErrorCode = keyof typeof errorCodes;

/** An error with a stable `code` from the registry and optional structured details. */
export class StewardError extends Error {
  readonly code: ErrorCode;
  readonly details: Readonly<Record<string, unknown>> | undefined;

  constructor(
    code: ErrorCode,
    message: string,
    options?: { cause?: unknown; details?: Record<string, unknown> },
  ) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'StewardError';
    this.code = code;
    this.details = options?.details;
  }
}

/** Turns anything thrown into an Error, keeping Errors as they are (JavaScript can throw any value). */
export function coerceError(thrown: unknown): Error {
  if (thrown instanceof Error) return thrown;
  if (typeof thrown === 'string') return new Error(thrown);
  try {
    return new Error(`Non-error thrown: ${JSON.stringify(thrown)}`);
  } catch {
    return new Error(`Non-error thrown: ${String(thrown)}`);
  }
}

/** A plain, serialisable view of an error, for IPC and status snapshots. */
export interface SerializedError {
  name: string;
  message: string;
  code?: string;
  stack?: string;
}

export function serializeError(thrown: unknown): SerializedError {
  const error = coerceError(thrown);
  const code = (error as { code?: unknown }).code;
  return {
    name: error.name,
    message: error.message,
    ...(typeof code === 'string' ? { code } : {}),
    ...(error.stack ? { stack: error.stack } : {}),
  };
}
