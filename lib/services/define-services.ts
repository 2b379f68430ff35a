import type { Service } from './types.js';

/** What a services module exports by default: a factory, called only in the process that runs them. */
export interface ServicesDefinition {
  readonly kind: 'cluster-steward:services';
  /** Builds the services; called once per services host start. */
  create(): Service[] | Promise<Service[]>;
}

/**
 * Declares the services of an application. The factory runs where services are placed (the sibling,
 * the primary, or a standalone process), never in an HTTP worker, so connections open only there.
 */
export function defineServices(create: () => Service[] | Promise<Service[]>): ServicesDefinition {
  if (typeof create !== 'function')
    throw new TypeError('defineServices expects a function returning services');
  return { kind: 'cluster-steward:services', create };
}
