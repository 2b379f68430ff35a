import cluster from 'node:cluster';
import type { WorkerStart } from '../common/worker-context.js';
import { StewardError } from '../errors.js';
import type { StewardOptions } from '../options.js';
import { steward } from '../steward.js';
import { asUsageError, type FlagSpec, numberOrText, parseCommandLine, usageError } from './flags.js';
import { existingModule, LOG_LEVEL_HELP, loggerFlag } from './modules.js';

/** How a flag's text becomes an option value; validation itself stays in `resolveOptions`. */
type Kind = 'number' | 'text' | 'module';

/** Flag → option path → conversion. One table, so errors can name the flag an option came from. */
const OPTION_FLAGS: [flag: string, path: string, kind: Kind][] = [
  ['workers', 'workers', 'number'],
  ['services', 'services', 'module'],
  ['placement', 'placement', 'text'],
  ['max-requests', 'recycle.maxRequests', 'number'],
  ['max-requests-jitter', 'recycle.maxRequestsJitter', 'number'],
  ['max-rss', 'recycle.maxRss', 'number'],
  ['max-heap', 'recycle.maxHeapUsed', 'number'],
  ['memory-checks', 'recycle.memoryChecks', 'number'],
  ['max-age', 'recycle.maxAge', 'number'],
  ['max-age-jitter', 'recycle.maxAgeJitter', 'number'],
  ['min-lifetime', 'recycle.minLifetime', 'number'],
  ['recycle-concurrency', 'recycle.concurrency', 'number'],
  ['drain-timeout', 'recycle.drainTimeout', 'number'],
  ['control-port', 'control.port', 'number'],
  ['control-host', 'control.host', 'text'],
  ['control-token', 'control.token', 'text'],
  ['grace', 'grace', 'number'],
  ['boot-timeout', 'bootTimeout', 'number'],
];

const FLAGS: Record<string, FlagSpec> = {
  ...Object.fromEntries(OPTION_FLAGS.map(([flag]) => [flag, { type: 'string' } as FlagSpec])),
  'log-level': { type: 'string' },
  'control-allow-unauthenticated': { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
};

/** Option path → flag name, for error messages. */
export const RUN_FLAG_OF: Record<string, string> = Object.fromEntries(
  OPTION_FLAGS.map(([flag, path]) => [path, flag]),
);

export const RUN_HELP = `Usage: cluster-steward run <server-module> [flags]

Runs <server-module> in clustered HTTP workers under cluster-steward. Its default export (or a named
export \`worker\` or \`start\`) is the start function, called in each worker as (id, disconnect, ctx);
it may return the http.Server(s) it created. The primary never imports it.

Workers and services
  --workers N                 HTTP workers (default: available parallelism)
  --services <module>         services module (export default defineServices(...))
  --placement sibling|primary where services run (default: sibling)

Recycling
  --max-requests N            recycle a worker after N requests
  --max-requests-jitter N     add up to N per worker, so workers do not retire together
  --max-rss SIZE              recycle when resident memory stays above SIZE (512MB, 1GiB)
  --max-heap SIZE             recycle when V8 heap used stays above SIZE
  --memory-checks N           samples over a memory limit before recycling (default: 3)
  --max-age DURATION          recycle a worker older than DURATION (6h, 30m)
  --max-age-jitter DURATION   add up to DURATION per worker
  --min-lifetime DURATION     no policy retires a younger worker (default: 10s)
  --recycle-concurrency N     workers recycling at once (default: 1)
  --drain-timeout DURATION    kill a draining worker after DURATION (default: 30s)

Control server (/metrics, /status, /healthz)
  --control-port P            listen on port P (0: any free port); none when omitted
  --control-host H            interface to bind (default: 127.0.0.1)
  --control-token T           require "Authorization: Bearer T" (or set STEWARD_CONTROL_TOKEN)
  --control-allow-unauthenticated
                              listen on a non-loopback --control-host without a token (refused otherwise)

Process
  --grace DURATION            graceful shutdown deadline (default: 30s; a bare number is ms)
  --boot-timeout DURATION     a worker must be ready within DURATION (default: 30s)
  --log-level LEVEL           ${LOG_LEVEL_HELP}
  -h, --help                  show this help

Signals: SIGTERM/SIGINT stop gracefully, SIGHUP recycles every worker, SIGUSR2 restarts the services.
Example: cluster-steward run ./server.js --workers 4 --services ./services.js --max-requests 10000`;

function setPath(target: Record<string, unknown>, path: string, value: unknown): void {
  const [head, tail] = path.split('.') as [string, string | undefined];
  if (tail === undefined) {
    target[head] = value;
    return;
  }
  const nested = (target[head] ?? {}) as Record<string, unknown>;
  nested[tail] = value;
  target[head] = nested;
}

/** The start function, imported in the worker only (the primary must not load the application). */
function startFrom(server: URL): WorkerStart {
  return async (id, disconnect, context) => {
    const module = (await import(server.href)) as Record<string, unknown>;
    const start = [module.default, module.worker, module.start].find((value) => typeof value === 'function');
    if (!start) {
      throw new StewardError(
        'STEWARD_ERR_WORKER_BOOT',
        `The server module ${server.href} exports no start function: use \`export default (id, disconnect, ctx) => ...\` or a named export \`worker\` or \`start\``,
        { details: { module: server.href } },
      );
    }
    return (start as WorkerStart)(id, disconnect, context);
  };
}

/**
 * Builds the `steward()` options from the command line. Pure and deterministic: node:cluster re-runs
 * this CLI with the same argv in every worker, and each must arrive at identical options.
 */
export function runOptions(args: string[]): StewardOptions | 'help' {
  const { values, positionals } = parseCommandLine(args, FLAGS, 1);
  if (values.help) return 'help';
  const server = positionals[0];
  if (server === undefined)
    throw usageError('`run` needs the server module, as in: cluster-steward run ./server.js');
  const options: Record<string, unknown> = { worker: startFrom(existingModule(server, 'server module')) };
  for (const [flag, path, kind] of OPTION_FLAGS) {
    const text = values[flag] as string | undefined;
    if (text === undefined) continue;
    const value =
      kind === 'number'
        ? numberOrText(text)
        : kind === 'module'
          ? existingModule(text, 'services module')
          : text;
    setPath(options, path, value);
  }
  if (values['control-allow-unauthenticated']) setPath(options, 'control.allowUnauthenticated', true);
  const control = options.control as Record<string, unknown> | undefined;
  const token = process.env.STEWARD_CONTROL_TOKEN;
  if (control && control.token === undefined && token) control.token = token;
  if (control && control.port === undefined) {
    const given = Object.keys(control).find((key) => values[`control-${key}`] !== undefined);
    throw usageError(`\`--control-${given ?? 'host'}\` needs \`--control-port\``);
  }
  const logger = loggerFlag(values['log-level']);
  if (logger) options.logger = logger;
  return options as StewardOptions;
}

export async function run(args: string[]): Promise<void> {
  const options = runOptions(args);
  if (options === 'help') {
    console.log(RUN_HELP);
    return;
  }
  // The primary checks the options first to name the flag of a bad one. A worker gets the settings the
  // primary resolved (worker/worker-settings.ts) and, like any worker, does not load the option specs.
  if (cluster.isPrimary) {
    const { resolveOptions } = await import('../options.js');
    try {
      resolveOptions(options);
    } catch (error) {
      throw asUsageError(error, RUN_FLAG_OF);
    }
  }
  await steward(options);
}
