// Entry of the services sibling, forked by the primary. It imports the services module and the host,
// never the application's HTTP code, so this process carries only the listeners' memory.
import { IpcChannel } from '../common/ipc.js';
import { relayDestination, relayedLoggerOptions } from '../common/log-relay.js';
import { createLogger } from '../common/logger.js';
import { coerceError, serializeError } from '../errors.js';
import {
  dispatchedNames,
  setDispatchIntake,
  setDispatchTransport,
  setLoadIntake,
} from '../listeners/dispatch.js';
import { advisoryLockLeases } from '../listeners/pg/singleton-lease.js';
import { EXIT_SERVICES_MODULE } from '../services/exit-code.js';
import { loadServices } from '../services/load-services.js';
import { ServiceHost } from '../services/service-host.js';
import { saveMemory } from './memory-mode.js';

/** What the primary passes in the environment (`STEWARD_SIBLING_*`). */
interface SiblingConfig {
  moduleUrl: URL;
  statusInterval: number;
  grace: number;
  /** The primary serves `/metrics` (it has a control port), so this process will be scraped. */
  scraped: boolean;
}

function readSiblingConfig(env: NodeJS.ProcessEnv): SiblingConfig {
  const moduleUrl = env.STEWARD_SIBLING_MODULE;
  const statusInterval = Number(env.STEWARD_SIBLING_STATUS_INTERVAL);
  const grace = Number(env.STEWARD_SIBLING_GRACE);
  if (!moduleUrl || !Number.isInteger(statusInterval) || !Number.isInteger(grace))
    throw new Error('The services sibling must be forked by the cluster-steward primary');
  return {
    moduleUrl: new URL(moduleUrl),
    statusInterval,
    grace,
    scraped: env.STEWARD_SIBLING_SCRAPED === '1',
  };
}

/** A dispatched event waits at most this long for its outcome (a listener's own timeout comes first). */
const DISPATCH_TIMEOUT_MS = 60 * 60 * 1000;

let metrics: Promise<typeof import('../metrics/local-metrics.js')> | undefined;

/**
 * prom-client and the metric families load once the services have started: they are about a fifth of
 * the sibling's start-up, which is the services' downtime after a crash (bench/failover.ts). Counters
 * and handler durations are kept by the service records themselves, so nothing counted before is lost.
 */
function loadMetrics(): Promise<typeof import('../metrics/local-metrics.js')> {
  metrics ??= Promise.all([
    import('../metrics/local-metrics.js'),
    import('../metrics/library-metrics.js'),
    import('../services/service-metrics.js'),
  ]).then(([local, library]) => {
    library.libraryRegistry('sibling');
    return local;
  });
  return metrics;
}

async function main(): Promise<void> {
  let primary: IpcChannel | undefined;
  const relayed = relayedLoggerOptions();
  const logger = createLogger(
    relayed,
    { role: 'sibling' },
    relayed &&
      relayDestination((line) => {
        // false only when the channel is gone: a full IPC backlog still queues the message.
        if (primary === undefined || primary.closed || !process.connected) return false;
        primary.send('log:line', { line });
        return true;
      }),
  );
  if (typeof process.send !== 'function') {
    logger.fatal('sibling:start:no-ipc');
    process.exit(EXIT_SERVICES_MODULE);
  }
  const config = readSiblingConfig(process.env);
  primary = new IpcChannel(process, { peerName: 'primary' });
  primary.handle('metrics:collect', async () =>
    (await loadMetrics()).collectLocalMetrics('sibling', undefined),
  );
  // Events dispatched to the workers go through the primary, which knows them and their load.
  const channel = primary;
  setDispatchTransport((name, event) =>
    channel.request('dispatch:event', { name, event }, DISPATCH_TIMEOUT_MS),
  );
  primary.on('valve:state', (message) => {
    setDispatchIntake(message.limit);
    setLoadIntake(message.loadLimit);
  });
  // Ctrl-C reaches the whole process group; the primary coordinates the stop through `services:stop`.
  process.on('SIGINT', () => {});

  let host: ServiceHost | undefined;
  let periodic: NodeJS.Timeout | undefined;
  let stopping = false;
  const stop = async (timeout: number, reason: string) => {
    if (stopping) return;
    stopping = true;
    clearInterval(periodic);
    logger.info({ reason, timeout }, 'sibling:stop');
    // A stop that arrives while the module is still loading: nothing has started yet.
    const clean = host ? await host.stop(timeout) : true;
    // Every event counted up to the last one: the cluster totals stay exact across a restart.
    await (await loadMetrics()).reportFinalMetrics(primary, undefined, 'sibling');
    primary.close('sibling exiting');
    process.exit(clean ? 0 : 1);
  };
  primary.on('services:stop', (message) => void stop(message.timeout, 'services:stop'));
  process.on('SIGTERM', () => void stop(config.grace, 'SIGTERM'));
  // The primary is gone (even killed with -9): nobody supervises us any more, so settle and leave.
  process.on('disconnect', () => void stop(config.grace, 'primary-disconnected'));

  let services: Awaited<ReturnType<typeof loadServices>>;
  try {
    services = await loadServices(config.moduleUrl);
  } catch (error) {
    logger.fatal({ err: coerceError(error), module: config.moduleUrl.href }, 'services:load:failed');
    // A configuration error: the primary exits with it instead of re-forking a sibling that cannot start.
    const { stack: _stack, ...reported } = serializeError(error);
    await primary.sendFlushed('services:load-failed', { error: reported });
    process.exit(EXIT_SERVICES_MODULE);
  }
  if (stopping) return;
  const started = new ServiceHost(services, {
    role: 'sibling',
    logger,
    leases: advisoryLockLeases,
    onSnapshot: (snapshot) => primary.send('services:status', { snapshot }),
  });
  host = started;
  const push = () => primary.send('services:status', { snapshot: started.snapshot() });
  periodic = setInterval(push, config.statusInterval);
  started.start();
  push();
  primary.send('dispatch:names', { names: dispatchedNames() });
  saveMemory().catch((error) => logger.warn({ err: coerceError(error) }, 'sibling:memory-mode:failed'));
  // With a control port, process metrics (GC, event loop) are observed from here on, not from the first
  // scrape. Without one nothing scrapes this process, and prom-client with its GC observer and
  // event-loop histogram would be 1 to 2 MiB of its memory for nothing (bench/valve-memory.ts); a
  // collect through `supervisor.metrics` still loads it then.
  if (config.scraped) void loadMetrics();
}

await main();
