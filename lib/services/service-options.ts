import { quoteIdentifier } from '../common/sql-identifier.js';
import { StewardError } from '../errors.js';
import { durationOption, integerOption, numberOption, rejectUnknownKeys, requireObject } from '../options.js';
import { defaultEpochTable } from './lease.js';
import type { Service, ServiceContext } from './types.js';

/** A service with every option present and in range, as the host runs it. */
export interface ResolvedService {
  name: string;
  run(ctx: ServiceContext): Promise<void>;
  restart: { initialDelay: number; maxDelay: number; jitter: number; intensity: number; period: number };
  stallTimeout: number;
  stopTimeout: number;
  singleton:
    | {
        connectionString: string;
        key: string;
        checkInterval: number;
        epochTable: { schema: string; table: string } | false;
      }
    | undefined;
}

/** Defaults of the per-service options; each is documented in `lib/services/types.ts`. */
export const serviceDefaults = {
  restart: { initialDelay: 100, maxDelay: 30_000, jitter: 0.2, intensity: 5, period: 60_000 },
  stallTimeout: 0,
  stopTimeout: 10_000,
  singletonCheckInterval: 750,
};

const RESTART_KEYS = ['initialDelay', 'maxDelay', 'jitter', 'intensity', 'period'];
const SINGLETON_KEYS = ['connectionString', 'key', 'checkInterval', 'epochTable'];
/** Service names appear in logs, metrics labels and status JSON: keep them plain. */
const SERVICE_NAME = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$/;

function invalidService(message: string, details: Record<string, unknown>): StewardError {
  return new StewardError('STEWARD_ERR_SERVICE_INVALID', message, { details });
}

function resolveRestart(prefix: string, raw: unknown): ResolvedService['restart'] {
  const d = serviceDefaults.restart;
  if (raw === undefined) return { ...d };
  requireObject(`${prefix}.restart`, raw);
  rejectUnknownKeys(raw, RESTART_KEYS, `${prefix}.restart.`);
  const read = <T>(key: string, check: (name: string, value: unknown) => T, fallback: T): T =>
    raw[key] === undefined ? fallback : check(`${prefix}.restart.${key}`, raw[key]);
  const restart = {
    initialDelay: read('initialDelay', (n, v) => durationOption(n, v, 0), d.initialDelay),
    maxDelay: read('maxDelay', (n, v) => durationOption(n, v, 0), d.maxDelay),
    jitter: read('jitter', (n, v) => numberOption(n, v, 0, 1), d.jitter),
    intensity: read('intensity', (n, v) => integerOption(n, v, 1), d.intensity),
    period: read('period', (n, v) => durationOption(n, v, 1), d.period),
  };
  // A maxDelay given alone below the default initialDelay is meant as a ceiling for both.
  if (raw.initialDelay === undefined && restart.maxDelay < restart.initialDelay)
    restart.initialDelay = restart.maxDelay;
  if (restart.maxDelay < restart.initialDelay) {
    throw new StewardError(
      'STEWARD_ERR_OPTION_CONFLICT',
      `Expected \`${prefix}.restart.maxDelay\` (${restart.maxDelay}) to be >= \`${prefix}.restart.initialDelay\` (${restart.initialDelay})`,
    );
  }
  return restart;
}

function resolveSingleton(prefix: string, name: string, raw: unknown): ResolvedService['singleton'] {
  if (raw === undefined) return undefined;
  requireObject(`${prefix}.singleton`, raw);
  rejectUnknownKeys(raw, SINGLETON_KEYS, `${prefix}.singleton.`);
  if (typeof raw.connectionString !== 'string' || raw.connectionString.length === 0) {
    // The value itself is never shown: it may hold a password.
    throw invalidService(`Expected \`${prefix}.singleton.connectionString\` to be a non-empty string`, {
      option: `${prefix}.singleton.connectionString`,
    });
  }
  const key = raw.key ?? name;
  if (typeof key !== 'string' || key.length === 0 || key.length > 256) {
    throw invalidService(`Expected \`${prefix}.singleton.key\` to be a string of 1 to 256 characters`, {
      option: `${prefix}.singleton.key`,
    });
  }
  const checkInterval =
    raw.checkInterval === undefined
      ? serviceDefaults.singletonCheckInterval
      : durationOption(`${prefix}.singleton.checkInterval`, raw.checkInterval, 10);
  return {
    connectionString: raw.connectionString,
    key,
    checkInterval,
    epochTable: resolveEpochTable(`${prefix}.singleton.epochTable`, raw.epochTable),
  };
}

function resolveEpochTable(option: string, raw: unknown): { schema: string; table: string } | false {
  if (raw === undefined) return { ...defaultEpochTable };
  if (raw === false) return false;
  requireObject(option, raw);
  rejectUnknownKeys(raw, ['schema', 'table'], `${option}.`);
  const schema = raw.schema ?? defaultEpochTable.schema;
  const table = raw.table ?? defaultEpochTable.table;
  quoteIdentifier(`${option}.schema`, schema);
  quoteIdentifier(`${option}.table`, table);
  return { schema: schema as string, table: table as string };
}

/**
 * The one place where a service definition is checked: its shape (`STEWARD_ERR_SERVICE_INVALID`) and
 * each option (`STEWARD_ERR_INVALID_OPTION`, naming `services.<name>.<option>`, the range and the value).
 */
export function resolveService(input: unknown, index: number): ResolvedService {
  if (typeof input !== 'object' || input === null || Array.isArray(input))
    throw invalidService(`services[${index}] is not an object with \`name\` and \`run\``, { index });
  const service = input as Partial<Service> & Record<string, unknown>;
  if (typeof service.name !== 'string' || !SERVICE_NAME.test(service.name)) {
    throw invalidService(
      `services[${index}].name must be 1 to 128 letters, digits, '_', '.', ':' or '-' starting with a letter or digit, got ${JSON.stringify(service.name)}`,
      { index },
    );
  }
  const prefix = `services.${service.name}`;
  if (typeof service.run !== 'function')
    throw invalidService(`${prefix}.run must be a function (ctx) => Promise<void>`, {
      service: service.name,
    });
  const run = service.run;
  return {
    name: service.name,
    run: (ctx) => run.call(service, ctx),
    restart: resolveRestart(prefix, service.restart),
    stallTimeout:
      service.stallTimeout === undefined
        ? serviceDefaults.stallTimeout
        : durationOption(`${prefix}.stallTimeout`, service.stallTimeout, 0),
    stopTimeout:
      service.stopTimeout === undefined
        ? serviceDefaults.stopTimeout
        : durationOption(`${prefix}.stopTimeout`, service.stopTimeout, 1),
    singleton: resolveSingleton(prefix, service.name, service.singleton),
  };
}

/** Resolves a whole list; names must be unique because status, logs and metrics key on them. */
export function resolveServices(list: unknown): ResolvedService[] {
  if (!Array.isArray(list)) {
    throw invalidService('The services factory must return an array of services', {
      received: list === null ? 'null' : typeof list,
    });
  }
  const resolved = list.map((item, index) => resolveService(item, index));
  const seen = new Set<string>();
  for (const service of resolved) {
    if (seen.has(service.name))
      throw invalidService(`Service name "${service.name}" is used twice`, { service: service.name });
    seen.add(service.name);
  }
  return resolved;
}
