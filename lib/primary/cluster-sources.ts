import type { Logger } from 'pino';
import type { IpcChannel } from '../common/ipc.js';
import { ClusterMetrics, type MetricsSource } from '../metrics/cluster-aggregator.js';
import type { ResolvedOptions } from '../options.js';
import { PoolMetrics } from './pool-metrics.js';
import type { PoolView } from './worker-pool.js';

/**
 * Cluster metrics of the primary: pool metrics, every ready or draining worker as a source, the exact
 * final snapshot each worker sends after draining, and the services sibling while one runs (the
 * supervisor passes each forked sibling's channel to `acceptFinalReport`).
 */
export function createClusterMetrics(
  pool: PoolView,
  options: ResolvedOptions,
  logger: Logger,
  siblingChannel: () => IpcChannel | undefined = () => undefined,
  siblingStale: () => boolean = () => false,
): ClusterMetrics {
  new PoolMetrics(pool);
  const metrics = new ClusterMetrics({
    sources: () => {
      const sources = workerSources(pool);
      // The channel is new for each forked sibling, so it also identifies that process.
      const channel = siblingChannel();
      if (channel && !channel.closed) sources.push(siblingSource(channel, siblingStale));
      return sources;
    },
    timeout: options.control?.metricsTimeout ?? 2_000,
    register: options.register,
    logger,
    // The primary answers for the services (of its sibling, or hosted here) in the service families.
    collectors: () => import('../services/service-metrics.js'),
  });
  pool.on('worker:forked', (handle) => {
    metrics.acceptFinalReport(handle, handle.channel);
  });
  pool.on('worker:exit', (handle) => metrics.retire(handle));
  return metrics;
}

/** Booting workers are left out: they have served nothing and may be busy loading the application. */
function workerSources(pool: PoolView): MetricsSource[] {
  const sources: MetricsSource[] = [];
  for (const handle of pool.handles) {
    if (handle.state !== 'ready' && handle.state !== 'draining') continue;
    sources.push({
      ...channelSource(handle, handle.channel, 'worker', `worker ${handle.id}`),
      retiring: () => handle.retireReason !== null,
    });
  }
  return sources;
}

/**
 * The services sibling, left out at once while it is stale, minus its `steward_service_up`: the primary answers for it from the status the
 * sibling pushes, which also covers a sibling too stopped or blocked to answer the scrape.
 */
function siblingSource(channel: IpcChannel, stale: () => boolean): MetricsSource {
  const source = channelSource(channel, channel, 'sibling', 'services sibling');
  return {
    ...source,
    collect: async (timeout) => {
      // Known to be silent (stopped or blocked): asking would only hold the scrape for the whole timeout.
      if (stale()) throw new Error('the services sibling sends no status (stale)');
      const metrics = await source.collect(timeout);
      return Array.isArray(metrics)
        ? metrics.filter((metric) => (metric as { name?: unknown }).name !== 'steward_service_up')
        : metrics;
    },
  };
}

/** A process reached through its IPC channel; `token` identifies the process across scrapes. */
export function channelSource(
  token: object,
  channel: IpcChannel,
  role: MetricsSource['role'],
  name: string,
): MetricsSource {
  return { token, role, name, collect: (timeout) => channel.request('metrics:collect', {}, timeout) };
}
