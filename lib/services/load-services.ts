import { StewardError } from '../errors.js';
import type { ServicesDefinition } from './define-services.js';
import { type ResolvedService, resolveServices } from './service-options.js';

/** Exit code of a services process whose module cannot be loaded (EX_CONFIG from sysexits.h). */
export const EXIT_SERVICES_MODULE = 78;

function isDefinition(value: unknown): value is ServicesDefinition {
  return (
    typeof value === 'object' &&
    value !== null &&
    (value as ServicesDefinition).kind === 'cluster-steward:services' &&
    typeof (value as ServicesDefinition).create === 'function'
  );
}

/**
 * Imports the services module, checks its default export is `defineServices(...)`, calls the factory
 * and validates what it returns. Only the process that runs the services calls this.
 */
export async function loadServices(moduleUrl: URL): Promise<ResolvedService[]> {
  let namespace: { default?: unknown };
  try {
    namespace = (await import(moduleUrl.href)) as { default?: unknown };
  } catch (error) {
    throw new StewardError(
      'STEWARD_ERR_SERVICES_MODULE',
      `Could not import the services module ${moduleUrl.href}: ${(error as Error)?.message ?? error}`,
      { cause: error, details: { module: moduleUrl.href } },
    );
  }
  if (!isDefinition(namespace.default)) {
    throw new StewardError(
      'STEWARD_ERR_SERVICES_MODULE',
      `The services module ${moduleUrl.href} must \`export default defineServices(() => [...])\``,
      { details: { module: moduleUrl.href } },
    );
  }
  let list: unknown;
  try {
    list = await namespace.default.create();
  } catch (error) {
    throw new StewardError(
      'STEWARD_ERR_SERVICES_MODULE',
      `The services factory of ${moduleUrl.href} threw: ${(error as Error)?.message ?? error}`,
      { cause: error, details: { module: moduleUrl.href } },
    );
  }
  return resolveServices(list);
}
