import type { ServiceStatus } from '../../lib/services/types.js';
import { addressFromReady, get } from './http.js';
import { event, freePort, type LogLine, type Spawned, spawnFixture, until } from './process.js';

/** What the fixture's `/status` route answers: `status()` as one worker sees it, plus that worker's pid. */
export interface WorkerView {
  pid: number;
  services: ServiceStatus[];
  host: { role: string; pid: number } | null;
  at: number | null;
  receivedAt: number | null;
  stale: boolean;
  healthy: boolean;
}

export interface ServicesApp extends Spawned {
  address: string;
  view(): Promise<WorkerView>;
  /** The first worker view for which `predicate` holds, polling; rejects after `timeoutMs`. */
  viewWhen(
    predicate: (view: WorkerView) => boolean,
    timeoutMs?: number,
    description?: string,
  ): Promise<WorkerView>;
  service(view: WorkerView, name: string): ServiceStatus;
  /** The pids that printed `fixture:services:imported`. */
  importers(): LogLine[];
  workerPids(): number[];
}

export { freePort };

/** Starts `services-app.js` with a services module and options, and waits until `workers` are ready. */
export async function startServicesApp(
  spawned: Spawned[],
  services: string,
  options: Record<string, unknown> = {},
  env: Record<string, string> = {},
  workers = 2,
): Promise<ServicesApp> {
  const fixture = spawnFixture('services-app.js', {
    FIXTURE_SERVICES: services,
    FIXTURE_OPTIONS: JSON.stringify({ workers, ...options }),
    PORT: String(await freePort()),
    ...env,
  });
  spawned.push(fixture);
  const ready = await fixture.waitForLogs(event('worker:ready'), workers, 20_000);
  const address = addressFromReady(ready[0]!);
  const view = async () => {
    const reply = await get(`http://${address}/status`, { timeoutMs: 5_000 });
    return JSON.parse(reply.body) as WorkerView;
  };
  return {
    ...fixture,
    address,
    view,
    async viewWhen(predicate, timeoutMs = 10_000, description = 'worker view') {
      let found: WorkerView | undefined;
      await until(
        async () => {
          const current = await view();
          if (predicate(current)) found = current;
          return found !== undefined;
        },
        timeoutMs,
        description,
      );
      return found!;
    },
    service(view, name) {
      const found = view.services.find((service) => service.name === name);
      if (!found) throw new Error(`no service ${name} in ${JSON.stringify(view)}`);
      return found;
    },
    importers: () => fixture.logs.filter(event('fixture:services:imported')),
    workerPids: () => fixture.logs.filter(event('worker:booting')).map((line) => line.workerPid as number),
  };
}

/** Every service running, as seen by a worker. */
export function allRunning(view: WorkerView): boolean {
  return view.services.length > 0 && view.services.every((service) => service.state === 'running');
}
