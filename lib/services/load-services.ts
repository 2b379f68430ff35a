import { StewardError } from '../errors.js';
import type { ServicesDefinition } from './define-services.js';
import { type ResolvedService, resolveServices } from './service-options.js';

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
    // A coded error (an invalid listener option) says all there is in its message; as a `cause` too, the
    // logger would print that message a second time after ours.
    // (Compared by code, not class: the module may load another copy of this library.)
    const code = (error as { code?: unknown } | undefined)?.code;
    const coded = typeof code === 'string' && code.startsWith('STEWARD_ERR_');
    throw new StewardError(
      'STEWARD_ERR_SERVICES_MODULE',
      `The services factory of ${moduleUrl.href} threw: ${(error as Error)?.message ?? error}`,
      coded
        ? { details: { module: moduleUrl.href, cause: code } }
        : { cause: error, details: { module: moduleUrl.href } },
    );
  }
  return resolveServices(list);
}
