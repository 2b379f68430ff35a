import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import promClient from 'prom-client';
import { redactDeep } from '../common/logger.js';
import { libraryRegistry } from '../metrics/library-metrics.js';
import {
  type ControlEndpoints,
  ControlServer,
  type ControlSettings,
  serviceProblems,
} from '../primary/control-server.js';
import type { ServicesSnapshot } from '../services/types.js';

/** What the standalone control server reads from the services host. */
export interface StandaloneControlTarget {
  snapshot(): ServicesSnapshot;
  /** True once a stop began: `/healthz` then answers 503 so traffic and probes move on. */
  readonly stopping: boolean;
}

/**
 * `/metrics` of this process: the library's `steward_` and process metrics, then the application's own
 * (prom-client's global registry), leaving out any family the library already reported.
 */
async function scrapeProcess(): Promise<string> {
  const library = libraryRegistry('standalone');
  const taken = new Set(library.getMetricsAsArray().map((metric) => metric.name));
  const application = promClient.register;
  const own = application.getMetricsAsArray().filter((metric) => !taken.has(metric.name));
  const parts = [await library.metrics()];
  for (const metric of own) parts.push(await application.getSingleMetricAsString(metric.name));
  return `${parts.map((part) => part.trimEnd()).join('\n')}\n`;
}

function standaloneEndpoints(target: StandaloneControlTarget): ControlEndpoints {
  return {
    scrapeMetrics: scrapeProcess,
    metricsContentType: libraryRegistry('standalone').contentType,
    status: () => ({
      pid: process.pid,
      at: Date.now(),
      uptime: Math.round(process.uptime() * 1000),
      stopping: target.stopping,
      // Service errors can quote connection strings: passwords never leave through /status.
      services: redactDeep(target.snapshot()),
    }),
    healthProblems: () => [
      ...(target.stopping ? ['shutting down'] : []),
      ...serviceProblems(target.snapshot()),
    ],
  };
}

/** The control server of `runServices({ control })`: the same server as the cluster primary's. */
export async function startStandaloneControl(
  target: StandaloneControlTarget,
  settings: ControlSettings,
  logger: Logger,
): Promise<{ address(): AddressInfo; close(): Promise<void> }> {
  return ControlServer.start(standaloneEndpoints(target), settings, logger);
}
