import cluster from 'node:cluster';
import { Server as NetServer } from 'node:net';
import { guardClosedOutput } from '../common/closed-output.js';
import { applyStatusUpdate, status } from '../common/cluster-status.js';
import { IpcChannel, logDroppedMessages } from '../common/ipc.js';
import type { WorkerContext } from '../common/worker-context.js';
import { serializeError } from '../errors.js';
import { collectLocalMetrics, reportFinalMetrics } from '../metrics/local-metrics.js';
import { AppShutdown } from './app-shutdown.js';
import { drainAndExit } from './drain.js';
import { EventHandlers } from './event-handlers.js';
import { watchListenCalls } from './listen-watch.js';
import { requestTracker } from './request-tracker.js';
import { WorkerLog } from './worker-log.js';
import { workerFamilies } from './worker-metrics.js';
import type { WorkerOptions } from './worker-settings.js';

/**
 * Runs in every HTTP worker: calls the application's start function, tracks its servers, reports
 * readiness and heartbeats to the primary, applies status pushes, and drains when told to retire.
 */
export async function runWorker(options: WorkerOptions): Promise<void> {
  const id = cluster.worker?.id ?? 0;
  // A closed stdout must not kill the worker, whether or not it ever builds its logger (which also does this).
  guardClosedOutput();
  const log: WorkerLog = new WorkerLog(
    options.logger,
    { role: 'worker', worker: id },
    options.relayLogs ? (line) => primary.sendFlushed('worker:log', line) : undefined,
  );
  const primary: IpcChannel = new IpcChannel(process, {
    peerName: 'primary',
    onDrop: logDroppedMessages(log),
  });
  const tracker = requestTracker();
  const draining = new AbortController();
  const staleAfter = options.statusInterval * 3;
  // Shutdown signals reach the whole process group (Ctrl-C); the primary coordinates, so the agent holds
  // them and runs the application's own handlers when it retires.
  const appShutdown = new AppShutdown(options.signals, log);
  // Events dispatched by the listeners; the primary stops routing here once the drain starts.
  const eventHandlers = new EventHandlers(draining.signal);

  primary.on('status:update', (message) => {
    applyStatusUpdate({ services: message.services, sentAt: message.sentAt }, options.services, staleAfter);
  });
  // prom-client and the process metrics load with the first scrape, not with each worker (each recycle).
  primary.handle('metrics:collect', () => collectLocalMetrics('worker', options.register, workerFamilies));
  primary.on('worker:drain', (message) => {
    if (draining.signal.aborted) return;
    draining.abort();
    void drainAndExit(tracker, message.timeout, log, primary, async (remaining) => {
      const started = Date.now();
      // The events already running here finish; their outcomes settle them at the source.
      await eventHandlers.idle();
      await appShutdown.run(remaining - (Date.now() - started));
      const budget = remaining - (Date.now() - started);
      await reportFinalMetrics(primary, options.register, 'worker', budget, workerFamilies);
    });
  });
  primary.on('worker:recycle-limit', (message) => {
    tracker.setRequestLimit(message.maxRequests, () =>
      primary.send('worker:recycle-request', { reason: 'max-requests' }),
    );
  });
  // The primary going away means nobody will route connections here or restart us: leave.
  process.on('disconnect', () => {
    if (!draining.signal.aborted) {
      draining.abort();
      void drainAndExit(tracker, options.grace, log, primary, (remaining) => appShutdown.run(remaining));
    }
  });
  // The primary logs the crash with its error and stack; stderr alone may go nowhere.
  process.on('uncaughtExceptionMonitor', (error) => {
    // With an 'uncaughtException' handler of the application's the worker lives on: nothing to report.
    if (process.listenerCount('uncaughtException') === 0)
      primary.send('worker:uncaught', { error: serializeError(error) });
  });
  // Before the application starts: what the primary sent while this process was loading was lost.
  primary.send('worker:hello', {});

  const context: WorkerContext = {
    id,
    get logger() {
      return log.logger;
    },
    signal: draining.signal,
    track: (server) => tracker.track(server),
    status: () => status(),
    handle: (name, handler) => eventHandlers.register(name, handler),
  };
  const disconnect = () => primary.send('worker:recycle-request', { reason: 'manual' });
  const listenCalls = watchListenCalls();
  try {
    const returned = await options.worker?.(id, disconnect, context);
    for (const server of serversIn(returned)) tracker.track(server);
    await Promise.all([...tracker.servers].map(listening));
  } catch (error) {
    log.error({ err: error }, 'worker:boot:failed');
    primary.send('worker:boot-failed', { error: serializeError(error) });
    // Give the message a moment to be flushed, then exit non-zero; the primary records the cause.
    setImmediate(() => process.exit(1));
    return;
  } finally {
    listenCalls.stop();
  }
  const listens = listenCalls.called || tracker.servers.size > 0;
  eventHandlers.serve(primary);
  primary.send('worker:handlers', { names: eventHandlers.names });
  // The load feeds the valve of the events dispatched here and of `valve: 'workers'` listeners' own handlers.
  // Loaded only then: a web-only worker never needs the event-loop histogram (`node:perf_hooks`).
  if (eventHandlers.names.length > 0 || options.services) {
    const { startLoadSignal } = await import('./load-signal.js');
    startLoadSignal(primary, VALVE_SIGNAL_INTERVAL);
  }
  primary.send('worker:ready', { addresses: tracker.addresses(), listens });
  startHeartbeat(primary, options.heartbeatInterval);
}

/** How often a worker with event handlers reports its load to the valve, in ms. */
const VALVE_SIGNAL_INTERVAL = 250;

function serversIn(value: unknown): NetServer[] {
  const list = Array.isArray(value) ? value : [value];
  return list.filter((item): item is NetServer => item instanceof NetServer);
}

function listening(server: NetServer): Promise<void> {
  if (server.listening) return Promise.resolve();
  return new Promise((resolve, reject) => {
    server.once('listening', () => resolve());
    server.once('error', reject);
  });
}

function startHeartbeat(primary: IpcChannel, interval: number): void {
  const tracker = requestTracker();
  const beat = () => {
    const memory = process.memoryUsage();
    primary.send('worker:heartbeat', {
      requests: tracker.requests,
      inFlight: tracker.inFlight,
      rss: memory.rss,
      heapUsed: memory.heapUsed,
    });
  };
  beat();
  setInterval(beat, interval).unref();
}
