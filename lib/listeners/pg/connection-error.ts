import { redactSecrets } from '../../common/logger.js';
import { StewardError } from '../../errors.js';

/** Where a connection string points, without its user or password: `host:port/database`. */
export function describeTarget(connectionString: string): string {
  let host = 'localhost';
  let port = '5432';
  let database = '';
  try {
    if (/^postgres(ql)?:\/\//i.test(connectionString)) {
      const url = new URL(connectionString);
      host = decodeURIComponent(url.hostname) || url.searchParams.get('host') || host;
      port = url.port || port;
      database = decodeURIComponent(url.pathname.replace(/^\//, ''));
    } else {
      // libpq key=value form: `host=db port=5433 dbname=app`.
      for (const [, key, value] of connectionString.matchAll(/(\w+)\s*=\s*('[^']*'|\S+)/g)) {
        const unquoted = value!.replace(/^'|'$/g, '');
        if (key === 'host') host = unquoted;
        else if (key === 'port') port = unquoted;
        else if (key === 'dbname') database = unquoted;
      }
    }
  } catch {
    // Unparsable strings were rejected by option validation; describe what can be described.
  }
  return `${host}:${port}/${database}`;
}

/** Causes whose fix is on the operator's side: waiting for the database to come back does not help. */
const PERMANENT: Record<string, string> = {
  '28P01': 'password authentication failed: check the user and password of the connection string',
  '28000': 'the server refused the role or this client (pg_hba.conf): check the user and the allowed hosts',
  '3D000': 'the database does not exist: check its name in the connection string or create it',
  ENOTFOUND: 'the host name does not resolve: check the host of the connection string',
  EAI_AGAIN: 'the host name could not be resolved right now: check DNS and the host of the connection string',
};

const TRANSIENT: Record<string, string> = {
  ECONNREFUSED:
    'nothing accepts connections there: is PostgreSQL running and listening on that host and port?',
  ECONNRESET: 'the connection was reset: PostgreSQL restarted or the network dropped it',
  ETIMEDOUT: 'no answer: check the host, the port and any firewall between',
  EHOSTUNREACH: 'the host is unreachable: check the network',
  '57P01': 'PostgreSQL is shutting down or terminated the connection',
  '57P03': 'PostgreSQL is starting up or in recovery',
};

function causeCode(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | undefined)?.code;
  return typeof code === 'string' ? code : undefined;
}

/** True for failures no retry can fix (bad password, unknown database or host). */
export function isPermanentConnectionFailure(error: unknown): boolean {
  const code = causeCode(error);
  return code !== undefined && code in PERMANENT;
}

/**
 * A driver error while connecting or querying, as STEWARD_ERR_PG_CONNECTION naming the server and
 * database (never the user or password), the cause and what to check.
 */
export function pgConnectionError(connectionString: string, error: unknown): StewardError {
  if (error instanceof StewardError && error.code === 'STEWARD_ERR_PG_CONNECTION') return error;
  const target = describeTarget(connectionString);
  const code = causeCode(error);
  const message = error instanceof Error ? error.message : String(error);
  const hint = code === undefined ? undefined : (PERMANENT[code] ?? TRANSIENT[code]);
  const cause = code !== undefined && !message.includes(code) ? `${code}: ${message}` : message;
  return new StewardError(
    'STEWARD_ERR_PG_CONNECTION',
    redactSecrets(`PostgreSQL ${target}: ${cause}${hint ? ` (${hint})` : ''}`),
    { cause: error, details: { target, code: code ?? null } },
  );
}
