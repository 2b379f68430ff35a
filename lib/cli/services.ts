import type { ControlOptions } from '../options.js';
import { runServices } from '../standalone/run-services.js';
import { asUsageError, type FlagSpec, numberOrText, parseCommandLine, usageError } from './flags.js';
import { existingModule, LOG_LEVEL_HELP, loggerFlag } from './modules.js';

const FLAGS: Record<string, FlagSpec> = {
  grace: { type: 'string' },
  'status-interval': { type: 'string' },
  'control-port': { type: 'string' },
  'control-host': { type: 'string' },
  'control-token': { type: 'string' },
  'control-allow-unauthenticated': { type: 'boolean' },
  'log-level': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
};

const FLAG_OF = {
  grace: 'grace',
  statusInterval: 'status-interval',
  'control.port': 'control-port',
  'control.host': 'control-host',
  'control.token': 'control-token',
  'control.allowUnauthenticated': 'control-allow-unauthenticated',
};

/** `control` from `--control-*` (and STEWARD_CONTROL_TOKEN), as `cluster-steward run` reads them. */
function controlFlags(values: Record<string, unknown>): Record<string, unknown> | undefined {
  const given = ['port', 'host', 'token', 'allow-unauthenticated'].filter(
    (key) => values[`control-${key}`] !== undefined,
  );
  if (given.length === 0) return undefined;
  if (values['control-port'] === undefined)
    throw usageError(`\`--control-${given[0]}\` needs \`--control-port\``);
  const control: Record<string, unknown> = { port: numberOrText(values['control-port'] as string) };
  if (values['control-host'] !== undefined) control.host = values['control-host'];
  const token = (values['control-token'] as string | undefined) ?? process.env.STEWARD_CONTROL_TOKEN;
  if (token) control.token = token;
  if (values['control-allow-unauthenticated']) control.allowUnauthenticated = true;
  return control;
}

export const SERVICES_HELP = `Usage: cluster-steward services <services-module> [flags]

Runs the services of <services-module> (export default defineServices(...)) alone, with no HTTP
workers: for a dedicated machine or Kubernetes deployment next to web-only servers. Crashed services
are restarted with backoff; SIGTERM/SIGINT stop them gracefully (exit 1 if one did not settle in time).

  --grace DURATION            deadline for the services to settle when stopping (default: 30s)
  --status-interval MS        status snapshot period in ms (default: 2000)
  --control-port P            serve /healthz, /metrics and /status on port P (0: any free port)
  --control-host H            interface to bind (default: 127.0.0.1)
  --control-token T           require "Authorization: Bearer T" (or set STEWARD_CONTROL_TOKEN)
  --control-allow-unauthenticated
                              listen on a non-loopback --control-host without a token (refused otherwise)
  --log-level LEVEL           ${LOG_LEVEL_HELP}
  -h, --help                  show this help

Example: cluster-steward services ./services.js --grace 60s --control-port 9464`;

export async function services(args: string[]): Promise<void> {
  const { values, positionals } = parseCommandLine(args, FLAGS, 1);
  if (values.help) {
    console.log(SERVICES_HELP);
    return;
  }
  const module = positionals[0];
  if (module === undefined) {
    throw usageError('`services` needs the services module, as in: cluster-steward services ./services.js');
  }
  const url = existingModule(module, 'services module');
  const logger = loggerFlag(values['log-level']);
  const control = controlFlags(values);
  try {
    await runServices(url, {
      ...(control ? { control: control as unknown as ControlOptions } : {}),
      ...(values.grace === undefined ? {} : { grace: numberOrText(values.grace as string) as number }),
      ...(values['status-interval'] === undefined
        ? {}
        : { statusInterval: numberOrText(values['status-interval'] as string) as number }),
      ...(logger ? { logger } : {}),
    });
  } catch (error) {
    throw asUsageError(error, FLAG_OF);
  }
}
