import type { MetricJson } from '../common/messages.js';
import { HistogramRecord, type HistogramSeries } from '../metrics/metric-record.js';
import type { EventOutcome, EventRecord } from './types.js';

/**
 * Wall time of event handlers, by service and outcome, observed by the service record itself from the
 * first event: a process may load prom-client after its services started (the sibling does, to keep that
 * load out of a failover's downtime), and the histogram still sees every event its counters count.
 */
const handlerSeconds = new HistogramRecord(
  { name: 'steward_event_handler_seconds', help: 'Wall time of event handlers, by service and outcome.' },
  [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
  true,
);

/**
 * Series by service, then outcome: a few of each, known after the first events. Observing through them
 * spares every event a labels object and its hash (sorted keys, a string): about 5% of all a services
 * sibling relaying 700 events a second allocated (sampled, bench/valve-memory.ts).
 */
const seriesByService = new Map<string, Map<EventOutcome, HistogramSeries>>();

export function observeHandlerDuration(service: string, event: EventRecord): void {
  if (event.durationMs === undefined || !(event.durationMs >= 0)) return;
  let byOutcome = seriesByService.get(service);
  if (byOutcome === undefined) {
    byOutcome = new Map();
    seriesByService.set(service, byOutcome);
  }
  let series = byOutcome.get(event.outcome);
  if (series === undefined) {
    series = handlerSeconds.series({ service, outcome: event.outcome });
    byOutcome.set(event.outcome, series);
  }
  series.observe(event.durationMs / 1000);
}

/** The histogram as prom-client's `get()` gives a family. */
export function handlerDurationFamily(): MetricJson {
  return handlerSeconds.toJson();
}
