import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import type { IpcChannel } from '../common/ipc.js';
import { requestTracker } from './request-tracker.js';

/**
 * Reports this worker's load to the primary's valve every `interval` ms: the 99th percentile of the
 * event-loop delay and the event-loop utilization over the interval, and the HTTP requests in flight.
 * The histogram is reset each time, so every report says how the last interval went, not the average
 * since boot.
 */
export function startLoadSignal(primary: IpcChannel, interval: number): () => void {
  const delay = monitorEventLoopDelay({ resolution: 10 });
  delay.enable();
  let lastUtilization = performance.eventLoopUtilization();
  const tracker = requestTracker();
  let lastRequests = tracker.requests;
  const report = () => {
    const now = performance.eventLoopUtilization();
    const utilization = performance.eventLoopUtilization(now, lastUtilization).utilization;
    lastUtilization = now;
    // The histogram is in nanoseconds; an empty one (no sample yet) reports 0.
    const loopDelayMs = delay.count > 0 ? delay.percentile(99) / 1e6 : 0;
    delay.reset();
    primary.send('valve:signal', {
      loopDelayMs,
      utilization: Number.isFinite(utilization) ? utilization : 0,
      httpInFlight: tracker.inFlight,
      httpRequests: tracker.requests - lastRequests,
    });
    lastRequests = tracker.requests;
  };
  const timer = setInterval(report, interval);
  timer.unref();
  return () => {
    clearInterval(timer);
    delay.disable();
  };
}
