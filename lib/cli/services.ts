import { runServices } from '../services/standalone.js';
import { asUsageError, type FlagSpec, numberOrText, parseCommandLine, usageError } from './flags.js';
import { existingModule, LOG_LEVEL_HELP, loggerFlag } from './modules.js';

const FLAGS: Record<string, FlagSpec> = {
  grace: { type: 'string' },
  'status-interval': { type: 'string' },
  'log-level': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
};

const FLAG_OF = { grace: 'grace', statusInterval: 'status-interval' };

export const SERVICES_HELP = `Usage: cluster-steward services <services-module> [flags]

Runs the services of <services-module> (export default defineServices(...)) alone, with no HTTP
workers: for a dedicated machine or Kubernetes deployment next to web-only servers. Crashed services
are restarted with backoff; SIGTERM/SIGINT stop them gracefully (exit 1 if one did not settle in time).

  --grace DURATION            deadline for the services to settle when stopping (default: 30s)
  --status-interval MS        status snapshot period in ms (default: 2000)
  --log-level LEVEL           ${LOG_LEVEL_HELP}
  -h, --help                  show this help

Example: cluster-steward services ./services.js --grace 60s`;

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
  try {
    await runServices(url, {
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
