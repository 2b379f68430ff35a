import type { ServiceStatus } from '../../lib/services/types.js';
import { addressFromReady, get } from './http.js';
import { event, type Spawned, spawnFixture, until } from './process.js';
import { parseExposition, total } from './prometheus.js';

/** The health fixture: one worker (ping), the services sibling, the control server. */
export interface HealthApp {
  fixture: Spawned;
  /** `http://127.0.0.1:<port>` of the control server. */
  control: string;
  /** `host:port` of the worker. */
  app: string;
}

/** What each health signal says about one service at one moment. */
export interface Signals {
  ping: number;
  healthz: number;
  reasons: string[];
  /** `steward_service_up` of the service, or undefined before the first scrape shows it. */
  up: number | undefined;
  service: ServiceStatus | undefined;
}

export async function startHealthApp(spawned: Spawned[], env: Record<string, string>): Promise<HealthApp> {
  const fixture = spawnFixture('health-app.js', env);
  spawned.push(fixture);
  const listening = await fixture.waitForLog(event('control:listening'), 20_000, 'control:listening');
  const ready = await fixture.waitForLog(event('worker:ready'), 20_000, 'worker:ready');
  return { fixture, control: `http://127.0.0.1:${listening.port as number}`, app: addressFromReady(ready) };
}

export async function readSignals(app: HealthApp, name: string): Promise<Signals> {
  const [ping, healthz, metrics, status] = await Promise.all([
    get(`http://${app.app}/ping`, { timeoutMs: 5_000 }),
    get(`${app.control}/healthz`, { timeoutMs: 5_000 }),
    get(`${app.control}/metrics`, { timeoutMs: 5_000 }),
    get(`${app.control}/status`, { timeoutMs: 5_000 }),
  ]);
  const samples = parseExposition(metrics.body).filter(
    (sample) => sample.name === 'steward_service_up' && sample.labels.service === name,
  );
  const services = (JSON.parse(status.body) as { services: { services: ServiceStatus[] } | null }).services;
  return {
    ping: ping.status,
    healthz: healthz.status,
    reasons: (JSON.parse(healthz.body) as { problems: string[] }).problems,
    up: samples.length > 0 ? total(samples, 'steward_service_up') : undefined,
    service: services?.services.find((service) => service.name === name),
  };
}

/**
 * Polls until ping, /healthz and `steward_service_up` all report the service unhealthy, and /healthz
 * names it with its problem (a service still starting is unhealthy too, for another reason).
 */
export async function untilUnhealthy(
  app: HealthApp,
  name: string,
  timeoutMs: number,
  what: string,
  expected?: RegExp,
): Promise<Signals> {
  const found = await until(
    async () => {
      const signals = await readSignals(app, name);
      const problem = signals.service?.problem;
      if (expected && !expected.test(String(problem))) return undefined;
      // (The two reads are moments apart: a problem's text may have changed in between.)
      const named =
        typeof problem === 'string' &&
        signals.reasons.some((reason) => reason.startsWith(`service ${name}: `));
      return signals.ping === 503 && signals.healthz === 503 && signals.up === 0 && named
        ? signals
        : undefined;
    },
    timeoutMs,
    `ping, /healthz and steward_service_up to report ${what}`,
    100,
  );
  return found!;
}

/** Polls until ping, /healthz and `steward_service_up` all report the service healthy. */
export async function untilHealthy(
  app: HealthApp,
  name: string,
  timeoutMs: number,
  what: string,
): Promise<Signals> {
  const found = await until(
    async () => {
      const signals = await readSignals(app, name);
      return signals.ping === 200 && signals.healthz === 200 && signals.up === 1 ? signals : undefined;
    },
    timeoutMs,
    `ping, /healthz and steward_service_up to report ${what}`,
    100,
  );
  return found!;
}

/** Ids the fixture's handlers completed, in order. */
export function handledIds(app: HealthApp): string[] {
  return app.fixture.logs.filter(event('fixture:handled')).map((line) => String(line.id));
}
