#!/usr/bin/env node
// The `cluster-steward` command. Under `run`, node:cluster re-runs this same file with the same argv in
// every HTTP worker, so everything before `steward()` must be deterministic and free of side effects.
import { readFileSync } from 'node:fs';
import { redactText } from '../common/redact.js';
import { coerceError, StewardError } from '../errors.js';
import { EXIT_USAGE, usageError } from './flags.js';

type Command = (args: string[]) => Promise<void>;

/**
 * Each command is loaded when it runs: under `run` every HTTP worker re-runs this file at each recycle, and
 * must not load the standalone services host that `services` imports.
 */
const COMMANDS: Record<string, () => Promise<Command>> = {
  run: () => import('./run.js').then((module) => module.run),
  services: () => import('./services.js').then((module) => module.services),
  status: () => import('./status.js').then((module) => module.status),
};

const HELP = `Usage: cluster-steward <command> [flags]

Commands
  run <server-module>         run a clustered HTTP server (and its services) under cluster-steward
  services <services-module>  run a services module alone, with no HTTP workers
  status                      print the workers and services of a running cluster

  cluster-steward <command> --help    flags of one command
  cluster-steward --version           the installed version`;

function version(): string {
  const manifest = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8'));
  return String(manifest.version);
}

async function main(argv: string[]): Promise<void> {
  const [name, ...rest] = argv;
  if (name === undefined) throw usageError('A command is needed: run, services or status');
  if (name === '--help' || name === '-h' || name === 'help') return console.log(HELP);
  if (name === '--version' || name === '-v') return console.log(version());
  const load = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
  if (!load) throw usageError(`Unknown command '${name}': use run, services or status`, { command: name });
  const command = await load();
  await command(rest);
}

function report(thrown: unknown, argv: string[]): never {
  const error = coerceError(thrown);
  const code = error instanceof StewardError ? error.code : (error as { code?: unknown }).code;
  console.error(
    `cluster-steward: ${redactText(error.message)}${typeof code === 'string' ? ` [${code}]` : ''}`,
  );
  if (code === 'STEWARD_ERR_CLI_USAGE') {
    const command = argv[0] && Object.hasOwn(COMMANDS, argv[0]) ? `${argv[0]} ` : '';
    console.error(`Run \`cluster-steward ${command}--help\` for usage.`);
    process.exit(EXIT_USAGE);
  }
  // Something may already run (a sibling, a control server): exit rather than wait for it.
  process.exit(1);
}

const argv = process.argv.slice(2);
main(argv).catch((error: unknown) => report(error, argv));
