import type { AddressInfo } from 'node:net';
import { applyStatusUpdate } from '../common/cluster-status.js';
import { createLogger } from '../common/logger.js';
import { moduleLocation } from '../common/option-checks.js';
import type { ServicesSnapshot } from '../services/types.js';
import { type RunServicesOptions, resolveRunServicesOptions } from './standalone-options.js';

export type { RunServicesOptions } from './standalone-options.js';

/** What `runServices()` resolves with: the running services host. */
export interface StandaloneServices {
  /** The status of every service now. */
  snapshot(): ServicesSnapshot;
  /** The bound address of the control server, or null without `control`. */
  controlAddress(): AddressInfo | null;
  /** Stops every service (within `timeout`, default `grace`); true when all settled cleanly. */
  stop(timeout?: number): Promise<boolean>;
}

/**
 * Runs a services module alone, with no HTTP server: for splitting services and web across machines,
 * or a dedicated Kubernetes deployment. The same host as in the primary or the sibling; in this process
 * `status()` and the ping handlers answer for these services.
 */
export async function runServices(
  moduleUrl: string | URL,
  input?: RunServicesOptions,
): Promise<StandaloneServices> {
  const url = moduleLocation('services', moduleUrl);
  const options = resolveRunServicesOptions(input);
  const logger = createLogger(options.logger, { role: 'standalone' });
  const staleAfter = options.statusInterval * 3;
  const publish = (snapshot: ServicesSnapshot) => {
    applyStatusUpdate({ services: snapshot, sentAt: snapshot.at }, true, staleAfter);
    options.onStatus?.(snapshot);
  };
  // Loaded here, not by the package entry: a primary or a services sibling whose code imports
  // 'cluster-steward' would otherwise load the services host, prom-client and the control server it
  // does not use. The service metric families observe every record of this process from its first event.
  const [{ startStandaloneControl }, { ServiceHost }, { loadServices }, { advisoryLockLeases }] =
    await Promise.all([
      import('./standalone-control.js'),
      import('../services/service-host.js'),
      import('../services/load-services.js'),
      import('../listeners/pg/singleton-lease.js'),
      import('../services/service-metrics.js'),
    ]);
  const host = new ServiceHost(await loadServices(url), {
    role: 'standalone',
    logger,
    onSnapshot: publish,
    leases: advisoryLockLeases,
  });
  let stopping = false;
  let control: Awaited<ReturnType<typeof startStandaloneControl>> | null = null;
  // Also keeps the process alive while every service just waits for its signal.
  const periodic = setInterval(() => publish(host.snapshot()), options.statusInterval);

  const stop = async (timeout = options.grace) => {
    stopping = true;
    clearInterval(periodic);
    const clean = await host.stop(timeout);
    await control?.close();
    return clean;
  };
  // Before the first await below: a signal while the control server binds still stops gracefully.
  const handlers: Array<[NodeJS.Signals, () => void]> = [];
  if (options.signals !== false) {
    let received = false;
    for (const signal of options.signals) {
      const onSignal = () => {
        // A second signal means "now": services that are still settling are abandoned.
        if (received) {
          logger.warn({ signal }, 'services:stop:forced');
          process.exit(1);
        }
        received = true;
        logger.info({ signal }, 'services:signal');
        void stop().then((clean) => process.exit(clean ? 0 : 1));
      };
      process.on(signal, onSignal);
      handlers.push([signal, onSignal]);
    }
  }
  // Bound before any service starts: a port in use fails the start, not a probe minutes later.
  if (options.control) {
    const target = {
      snapshot: () => host.snapshot(),
      get stopping() {
        return stopping;
      },
    };
    try {
      control = await startStandaloneControl(target, options.control, logger);
    } catch (error) {
      clearInterval(periodic);
      for (const [signal, onSignal] of handlers) process.off(signal, onSignal);
      throw error;
    }
  }
  // A signal came while the control server was binding: the process is on its way out.
  if (stopping) {
    await control?.close();
    return { snapshot: () => host.snapshot(), controlAddress: () => null, stop };
  }
  host.start();
  publish(host.snapshot());
  return { snapshot: () => host.snapshot(), controlAddress: () => control?.address() ?? null, stop };
}
