import { readFileSync } from 'node:fs';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import type { IpcChannel } from '../common/ipc.js';
import { requestTracker } from './request-tracker.js';

/**
 * Linux's scheduler statistics of the calling thread: time on a CPU, time runnable but waiting for one
 * (run-queue wait), and time slices, in ns. Read from the event loop's thread, so the wait is the loop's.
 */
const SCHEDSTAT = '/proc/thread-self/schedstat';

/**
 * Reports this worker's load to the primary's valve every `interval` ms: the 99th percentile of the
 * event-loop delay and the event-loop utilization over the interval, the share of the interval the event
 * loop's thread waited for a CPU (where the kernel says, see `cpuWaitMeter`), and the HTTP requests in
 * flight. The histogram is reset each time, so every report says how the last interval went, not the
 * average since boot.
 */
export function startLoadSignal(primary: IpcChannel, interval: number): () => void {
  const delay = monitorEventLoopDelay({ resolution: 10 });
  delay.enable();
  let lastUtilization = performance.eventLoopUtilization();
  const tracker = requestTracker();
  let lastRequests = tracker.requests;
  const cpuWait = cpuWaitMeter();
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
      cpuWait: cpuWait(),
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

/**
 * Returns a function that gives, on each call, the share of the wall time since the last call that this
 * thread was runnable but waiting for a CPU (0 when it never waited, 0.3 when it waited 30 % of the time),
 * or `null` where the kernel does not tell (not Linux, or a kernel without scheduler statistics).
 *
 * The other signals cannot see this: a worker that waits for a CPU taken by another process (the other
 * workers running events, the services sibling, the database, anything else on the machine) is neither
 * busy (utilization counts the time it ran) nor late by much per tick, yet every request it holds waits
 * with it. One small read of procfs per report.
 */
export function cpuWaitMeter(path = SCHEDSTAT): () => number | null {
  let last = readRunDelay(path);
  let lastAt = performance.now();
  return () => {
    if (last === null) return null;
    const runDelay = readRunDelay(path);
    const at = performance.now();
    if (runDelay === null) return null;
    const elapsedNs = (at - lastAt) * 1e6;
    const share = elapsedNs > 0 ? Math.max(0, runDelay - last) / elapsedNs : 0;
    last = runDelay;
    lastAt = at;
    return share;
  };
}

/** The run-queue wait of `path` so far, in ns, or `null` when it cannot be read. */
function readRunDelay(path: string): number | null {
  try {
    // "<on cpu ns> <run-queue wait ns> <time slices>"
    const runDelay = Number(readFileSync(path, 'latin1').split(' ')[1]);
    return Number.isFinite(runDelay) ? runDelay : null;
  } catch {
    return null;
  }
}
