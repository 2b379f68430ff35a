import { StewardError } from '../errors.js';

/** Hands one event to the HTTP workers and resolves with the outcome of the worker's handler. */
export type DispatchTransport = (name: string, event: unknown) => Promise<void>;

const WORKER_DISPATCH = Symbol.for('cluster-steward.worker-dispatch');

let transport: DispatchTransport | undefined;
let intake = Number.POSITIVE_INFINITY;
const names = new Set<string>();

/**
 * A listener handler that runs nothing here: it hands the event (as JSON) to whichever HTTP worker the
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
  const handler = async (event: unknown): Promise<void> => {
    if (transport === undefined)
      throw new StewardError(
        'STEWARD_ERR_NO_HANDLER',
        `'${name}' is dispatched to the workers, but this process has none (run the services under steward())`,
        { details: { name } },
      );
    await transport(name, asJson(event));
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

/**
 * The most events a dispatching listener should hold at once right now. Each listener also stays within
 * its own `concurrency`, the ceiling; unbounded until the primary first reports its valve.
 */
export function dispatchIntake(): number {
  return intake;
}

/**
 * The event as the worker will receive it: IPC carries JSON, so it is turned into JSON here, where a
 * value that cannot cross (a cycle, a BigInt) fails this event instead of the channel.
 */
function asJson(event: unknown): unknown {
  const text = JSON.stringify(event);
  return text === undefined ? null : JSON.parse(text);
}
