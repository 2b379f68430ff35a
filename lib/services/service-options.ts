import { type Resolved, resolveSpec } from '../common/option-spec.js';
import { StewardError } from '../errors.js';
import { serviceSpec } from './service-spec.js';
import type { ResolvedSingleton } from './singleton-options.js';
import type { Service, ServiceContext } from './types.js';

export {
  type RestartOptions,
  type ServiceOptions,
  type SingletonOptions,
  serviceSpec,
} from './service-spec.js';

/** A service with every option present and in range, as the host runs it. */
export interface ResolvedService extends Omit<Resolved<typeof serviceSpec>, 'singleton'> {
  name: string;
  run(ctx: ServiceContext): Promise<void>;
  /** With its `key` defaulted to the service name. */
  singleton: (ResolvedSingleton & { key: string }) | undefined;
}

/** Service names appear in logs, metrics labels and status JSON: keep them plain. */
const SERVICE_NAME = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$/;

function invalidService(message: string, details: Record<string, unknown>): StewardError {
  return new StewardError('STEWARD_ERR_SERVICE_INVALID', message, { details });
}

/** A service object carries its own fields too (`run`, anything the factory adds): only the options are read. */
function optionsOf(service: Record<string, unknown>): Record<string, unknown> {
  const options: Record<string, unknown> = {};
  for (const key of Object.keys(serviceSpec)) options[key] = service[key];
  return options;
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
  const { singleton, ...options } = resolveSpec(serviceSpec, optionsOf(service), prefix);
  return {
    name: service.name,
    run: (ctx) => run.call(service, ctx),
    ...options,
    singleton: singleton && { ...singleton, key: singleton.key ?? service.name },
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
