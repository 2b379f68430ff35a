import { StewardError } from '../errors.js';

/** Hands one event to the HTTP workers and resolves with the outcome of the worker's handler. */
export type DispatchTransport = (name: string, event: unknown) => Promise<void>;

const WORKER_DISPATCH = Symbol.for('cluster-steward.worker-dispatch');

let transport: DispatchTransport | undefined;
let intake = Number.POSITIVE_INFINITY;
let loadIntake = Number.POSITIVE_INFINITY;
const names = new Set<string>();

/**
 * A listener handler that runs nothing here: it hands the event (as JSON, serialized once) to whichever HTTP worker the
 * valve admits it to, where `ctx.handle(name, handler)` registered the code that handles it, and resolves
 * or rejects with that handler's outcome. The listener therefore settles the event at its source (AMQP
 * accept or release, PostgreSQL complete or retry) only once a worker handled it: a worker killed
 * mid-handler fails the event, which runs again elsewhere. Usable wherever a listener takes a handler:
 * `amqpListener({ handler: toWorkers('candlepin') })`,
 * `pgEventQueue({ handlers: { 'host.created': toWorkers('host.created') } })`.
 */
export function toWorkers(name: string): (event: unknown) => Promise<void> {
  if (typeof name !== 'string' || name.length === 0 || name.length > 256)
    throw new StewardError(
      'STEWARD_ERR_INVALID_OPTION',
      `Expected the name given to \`toWorkers\` to be a string of 1 to 256 characters, got ${JSON.stringify(name)}`,
      { details: { option: 'toWorkers(name)' } },
    );
  names.add(name);
  const handler = (event: unknown): Promise<void> => {
    if (transport === undefined)
      return Promise.reject(
        new StewardError(
          'STEWARD_ERR_NO_HANDLER',
          `'${name}' is dispatched to the workers, but this process has none (run the services under steward())`,
          { details: { name } },
        ),
      );
    // The event crosses as it is: the IPC channel serializes it once and the worker parses it once.
    return transport(name, event).catch((error: unknown) => {
      throw notJson(name, event) ?? error;
    });
  };
  return Object.assign(handler, { [WORKER_DISPATCH]: name });
}

/** Whether `handler` was made by `toWorkers` (its listener's intake then follows the valve). */
export function dispatchesToWorkers(handler: unknown): boolean {
  return typeof handler === 'function' && WORKER_DISPATCH in handler;
}

/** Every name given to `toWorkers` in this process, so the primary can check the workers handle them. */
export function dispatchedNames(): string[] {
  return [...names];
}

/** Set by the services host: how events reach the workers from this process. */
export function setDispatchTransport(next: DispatchTransport | undefined): void {
  transport = next;
}

/** Set by the services host from the primary's valve: events the workers take at once, cluster-wide. */
export function setDispatchIntake(limit: number): void {
  intake = limit;
}

/** Set by the services host from the primary's valve: events handlers here may run at once (`valve: 'workers'`). */
export function setLoadIntake(limit: number): void {
  loadIntake = limit;
}

/**
 * Which limit a listener's intake follows: `dispatch` (its handlers are `toWorkers`: the events the
 * workers take at once) or `load` (`valve: 'workers'`: its own handlers, throttled by the workers' load).
 */
export type IntakeSource = 'dispatch' | 'load';

export function intakeSource(dispatches: boolean, valve: 'none' | 'workers'): IntakeSource | undefined {
  if (dispatches) return 'dispatch';
  return valve === 'workers' ? 'load' : undefined;
}

/** The most events a listener behind the workers' valve should hold at once now (its `concurrency` bounds it too). */
export function intakeOf(source: IntakeSource): number {
  return source === 'dispatch' ? intake : loadIntake;
}

/**
 * Why `event` could not cross to a worker, when the cause is the event itself: IPC carries JSON, and a value
 * that cannot become JSON (a cycle, a BigInt) fails this event only. Checked after a failure, so an event
 * that crossed is serialized once, by the channel.
 */
function notJson(name: string, event: unknown): TypeError | undefined {
  try {
    JSON.stringify(event);
    return undefined;
  } catch (error) {
    return new TypeError(
      `An event dispatched to the workers as '${name}' cannot be sent as JSON: ${(error as Error).message}`,
      { cause: error },
    );
  }
}
