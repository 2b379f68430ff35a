import http from 'node:http';
import { redactDeep, redactText, registerSecret } from '../common/redact.js';
import { StewardError } from '../errors.js';
import { type FlagSpec, parseCommandLine, usageError } from './flags.js';
import { renderStatus, type StatusDocument } from './status-table.js';

const FLAGS: Record<string, FlagSpec> = {
  port: { type: 'string', short: 'p' },
  host: { type: 'string' },
  token: { type: 'string' },
  timeout: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
};

/** The port of the control server when none is given (the one the docs and examples use). */
export const DEFAULT_CONTROL_PORT = 9394;

export const STATUS_HELP = `Usage: cluster-steward status [flags]

Asks a running cluster's control server for /status and prints its workers and services as tables.
Exits 0 when the cluster answered, 1 when it could not be reached or refused the token.

  -p, --port P                control server port (default: ${DEFAULT_CONTROL_PORT}, or STEWARD_CONTROL_PORT)
  --host H                    control server host (default: 127.0.0.1)
  --token T                   bearer token (default: STEWARD_CONTROL_TOKEN)
  --timeout MS                give up after MS milliseconds (default: 5000)
  --json                      print the raw JSON document instead of tables
  -h, --help                  show this help

Example: cluster-steward status --port 9394`;

function integerFlag(name: string, text: string, min: number, max: number): number {
  const value = /^\d+$/.test(text) ? Number(text) : Number.NaN;
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw usageError(`Expected \`--${name}\` to be an integer between ${min} and ${max}, got '${text}'`, {
      flag: `--${name}`,
    });
  }
  return value;
}

function fetchStatus(
  host: string,
  port: number,
  token: string | undefined,
  timeout: number,
): Promise<string> {
  const where = `${host}:${port}`;
  return new Promise((resolve, reject) => {
    const headers = token ? { authorization: `Bearer ${token}` } : {};
    const request = http.get({ host, port, path: '/status', headers, agent: false }, (response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => {
        body += chunk;
      });
      response.on('end', () => {
        if (response.statusCode === 200) return resolve(body);
        if (response.statusCode === 401) {
          return reject(
            new StewardError(
              'STEWARD_ERR_CONTROL_AUTH',
              `The control server at ${where} wants a valid bearer token: pass --token or set STEWARD_CONTROL_TOKEN`,
            ),
          );
        }
        reject(new Error(`The control server at ${where} answered ${response.statusCode}: ${body.trim()}`));
      });
    });
    request.setTimeout(timeout, () =>
      request.destroy(new Error(`The control server at ${where} did not answer within ${timeout} ms`)),
    );
    request.on('error', (error: NodeJS.ErrnoException) => {
      if (error.code === 'ECONNREFUSED') {
        reject(
          new Error(
            `No control server at ${where} (connection refused): is the cluster running with a control port?`,
          ),
        );
      } else reject(error);
    });
  });
}

export async function status(args: string[]): Promise<void> {
  const { values } = parseCommandLine(args, FLAGS, 0);
  if (values.help) {
    console.log(STATUS_HELP);
    return;
  }
  const portText = (values.port as string | undefined) ?? process.env.STEWARD_CONTROL_PORT;
  const port = portText === undefined ? DEFAULT_CONTROL_PORT : integerFlag('port', portText, 1, 65_535);
  const timeout =
    values.timeout === undefined ? 5_000 : integerFlag('timeout', values.timeout as string, 1, 600_000);
  const host = (values.host as string | undefined) ?? '127.0.0.1';
  const token = (values.token as string | undefined) ?? process.env.STEWARD_CONTROL_TOKEN;
  registerSecret(token);
  // The server redacts too; a server of another version, or a terminal log, is no reason to trust it.
  const body = redactText(await fetchStatus(host, port, token, timeout));
  if (values.json) {
    process.stdout.write(body.endsWith('\n') ? body : `${body}\n`);
    return;
  }
  console.log(renderStatus(redactDeep(JSON.parse(body) as StatusDocument)));
}
