// 10,000 series on prom-client's global registry, as a busy application worker would hold them:
// 5,000 counter series, 2,500 gauge series, 2,500 histogram series (250 label sets x 10 samples).
import promClient from 'prom-client';

export function registerSeries() {
  const labelNames = ['route'];
  for (let family = 0; family < 50; family++) {
    const counter = new promClient.Counter({
      name: `bench_counter_${family}_total`,
      help: 'bench',
      labelNames,
    });
    for (let route = 0; route < 100; route++) counter.inc({ route: `/r/${route}` }, route + 1);
  }
  for (let family = 0; family < 25; family++) {
    const gauge = new promClient.Gauge({ name: `bench_gauge_${family}`, help: 'bench', labelNames });
    for (let route = 0; route < 100; route++) gauge.set({ route: `/r/${route}` }, route);
  }
  for (let family = 0; family < 2; family++) {
    const histogram = new promClient.Histogram({
      name: `bench_histogram_${family}_seconds`,
      help: 'bench',
      labelNames,
      buckets: [0.005, 0.01, 0.05, 0.1, 0.5, 1, 5],
    });
    for (let route = 0; route < 125; route++) histogram.observe({ route: `/r/${route}` }, route / 100);
  }
}
