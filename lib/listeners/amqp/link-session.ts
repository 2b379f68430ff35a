import { randomUUID } from 'node:crypto';
import { createRequire } from 'node:module';
import type { Connection, ConnectionOptions, Receiver, ReceiverOptions } from 'rhea';
import { redactSecrets } from '../../common/logger.js';
import { StewardError } from '../../errors.js';
import type { ServiceContext } from '../../services/types.js';
import {
  type BrokerProfile,
  brokerProfiles,
  detectBroker,
  isFatalCondition,
  retryOutcomeFor,
} from './broker-profile.js';
import { type ConsumerDeps, LinkConsumer } from './link-consumer.js';
import type { ResolvedAmqpOptions } from './options.js';
import { catchUndecodable } from './undecodable.js';

// rhea is CommonJS exporting a container instance; its typings declare named exports only.
const rhea = createRequire(import.meta.url)('rhea') as typeof import('rhea');

/** How one connection attempt ended when it did not crash the service. */
export interface SessionEnd {
  /** The receiver was attached at some point. */
  attached: boolean;
  /** How long the receiver stayed attached, in ms (0 when it never was). */
  attachedMs: number;
  /** Why the link went away; undefined for a requested stop. */
  error: Error | undefined;
}

function connectionOptions(options: ResolvedAmqpOptions, containerId: string): ConnectionOptions {
  const common = {
    host: options.host,
    port: options.port,
    username: options.username,
    password: options.password,
    hostname: options.hostname ?? options.host,
    container_id: containerId,
    properties: options.properties,
    idle_time_out: options.idleTimeout || undefined,
    // Reconnects are the listener's own (jittered backoff, fresh link, credit re-granted).
    reconnect: false as const,
    // rhea turns Nagle off only in `connection.attach_receiver`, not for a receiver attached on a session
    // of its own: a credit grant written right after a disposition then waited for the broker's delayed
    // ACK (40 ms on Linux) with the link idle, most of the drain time in bench/amqp.ts.
    tcp_no_delay: true,
  };
  if (options.tls) return { ...options.tls, ...common, transport: 'tls' };
  return { ...common, transport: 'tcp' };
}

function receiverOptions(options: ResolvedAmqpOptions, address: string): ReceiverOptions {
  const subscription = options.subscription;
  return {
    ...(subscription ? { name: subscription.name } : {}),
    source: {
      address,
      ...(subscription?.durable ? { durable: 2, expiry_policy: 'never' } : {}),
    },
    credit_window: 0,
    autoaccept: false,
    // rcv-settle-mode first: a disposition settles at once, no extra round trip per message.
    rcv_settle_mode: 0,
  };
}

/** An AMQP error, a socket error or a bare condition, as one Error with its condition kept. */
function describeError(error: unknown, fallback: string): Error {
  if (error instanceof Error) return error;
  const amqp = error as { condition?: string; description?: string } | undefined;
  const message = amqp?.description ?? amqp?.condition ?? fallback;
  return Object.assign(new Error(message), amqp?.condition ? { condition: amqp.condition } : {});
}

export function connectionFailure(options: ResolvedAmqpOptions, error: Error): StewardError {
  const condition = (error as { condition?: string }).condition ?? (error as { code?: string }).code;
  const hint =
    condition === 'amqp:unauthorized-access'
      ? ': authentication failed, check username and password'
      : condition === 'amqp:not-found'
        ? ': the address does not exist on the broker'
        : '';
  return new StewardError(
    'STEWARD_ERR_AMQP_CONNECTION',
    redactSecrets(
      `AMQP listener \`${options.name}\` cannot consume from ${options.host}:${options.port}${hint} (${condition ?? 'error'}: ${error.message})`,
    ),
    { cause: error, details: { host: options.host, port: options.port, condition } },
  );
}

/**
 * Calls `onAvailable` with the `available` field of every flow frame the broker sends on this link.
 * rhea's `receiver_flow` event does not carry the frame, so its `on_flow` is wrapped.
 */
function watchAvailable(receiver: Receiver, onAvailable: (available: number) => void): void {
  const link = receiver as unknown as { on_flow(frame: { performative?: { available?: unknown } }): void };
  const onFlow = link.on_flow.bind(link);
  link.on_flow = (frame) => {
    const available = frame.performative?.available;
    if (typeof available === 'number') onAvailable(available);
    onFlow(frame);
  };
}

/**
 * Closes the socket through rhea's own `abort_socket`, which also clears its heartbeat timers; a bare
 * `socket.destroy()` emits no 'end', so rhea would keep an idle timer (and the process) alive.
 */
function abortSocket(connection: Connection): void {
  const internal = connection as unknown as { socket?: unknown; abort_socket(socket: unknown): void };
  if (internal.socket) internal.abort_socket(internal.socket);
}

/**
 * One connection, one session, one receiver. Resolves when the link is lost (the caller reconnects)
 * or once a requested stop settled everything; rejects with STEWARD_ERR_AMQP_CONNECTION on failures
 * no reconnect can fix.
 */
export class LinkSession {
  readonly #options: ResolvedAmqpOptions;
  readonly #ctx: ServiceContext;
  readonly #deps: ConsumerDeps;
  #connection: Connection | undefined;
  #consumer: LinkConsumer | undefined;
  #ended = false;
  #resolve!: (end: SessionEnd) => void;
  #reject!: (error: Error) => void;
  #timers: NodeJS.Timeout[] = [];
  #attachedAt: number | undefined;

  constructor(deps: ConsumerDeps) {
    this.#options = deps.options;
    this.#ctx = deps.ctx;
    this.#deps = deps;
  }

  /** The consumer of the attached link, once attached. */
  get consumer(): LinkConsumer | undefined {
    return this.#consumer;
  }

  run(): Promise<SessionEnd> {
    return new Promise<SessionEnd>((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
      this.#open();
    });
  }

  #open(): void {
    const options = this.#options;
    const containerId = options.containerId ?? `cluster-steward-${options.name}-${randomUUID()}`;
    const container = rhea.create_container({ id: containerId });
    // Unhandled rhea errors are re-emitted on the container; without this they would throw.
    container.on('error', (error: unknown) => this.#lost(describeError(error, 'AMQP error')));
    this.#ctx.logger.info(
      { host: options.host, port: options.port, tls: options.tls !== undefined },
      'amqp:connect:start',
    );
    const connection = container.connect(connectionOptions(options, containerId));
    this.#connection = connection;
    connection.on('connection_error', (c) =>
      this.#lost(describeError(c.error ?? c.connection.error, 'connection error')),
    );
    connection.on('connection_close', () => this.#lost(new Error('connection closed by the broker')));
    connection.on('disconnected', (c) => this.#lost(describeError(c.error, 'disconnected')));
    connection.on('session_error', (c) =>
      this.#lost(describeError(c.session?.error ?? c.error, 'session error')),
    );
    connection.on('session_close', () => this.#lost(new Error('session ended by the broker')));
    connection.on('connection_open', () => this.#attach(connection));
    // rhea prints protocol errors to stderr unless someone listens. RabbitMQ 3.x sends a second close
    // (a crashed reader) after ending a session with an error; the first error already ended this attempt.
    connection.on('protocol_error', (error: unknown) =>
      this.#ctx.logger.debug({ err: error }, 'amqp:protocol-error'),
    );
    this.#timers.push(
      setTimeout(() => {
        if (!this.#consumer) this.#lost(new Error(`not attached within ${options.connectTimeout} ms`));
      }, options.connectTimeout),
    );
  }

  #profile(connection: Connection): BrokerProfile {
    const chosen = this.#options.broker;
    if (chosen !== 'auto') return brokerProfiles[chosen];
    return detectBroker(connection.properties as Record<string, unknown> | undefined);
  }

  #attach(connection: Connection): void {
    const options = this.#options;
    const profile = this.#profile(connection);
    const { kind, value } = options.address;
    const address = kind === 'queue' ? profile.queueAddress(value) : value;
    const session = connection.create_session();
    session.begin();
    const receiver = session.attach_receiver(receiverOptions(options, address));
    receiver.on('receiver_error', (c) =>
      this.#lost(describeError(c.receiver?.error ?? c.error, 'link error')),
    );
    receiver.on('receiver_close', () => this.#lost(new Error('link detached by the broker')));
    receiver.on('message', (c) => this.#consumer?.onMessage(c.message!, c.delivery!));
    catchUndecodable(receiver, (delivery, error) => this.#consumer?.onUndecodable(delivery, error));
    watchAvailable(receiver, (available) => this.#consumer?.onFlow(available));
    receiver.on('receiver_open', () => {
      const retryOutcome = retryOutcomeFor(profile, receiver.source?.outcomes);
      this.#consumer = new LinkConsumer(receiver, this.#deps, profile, retryOutcome);
      this.#consumer.start();
      this.#attachedAt = Date.now();
      this.#deps.health.connected();
      this.#ctx.setConnected(true);
      this.#ctx.ready();
      this.#ctx.logger.info(
        { address, broker: profile.name, retryOutcome, prefetch: options.prefetch },
        'amqp:link:attached',
      );
      // An idle link is healthy: keep the stall watchdog fed while no handler is running.
      const tick = setInterval(() => {
        const running = this.#consumer?.running ?? 0;
        this.#deps.health.handlersRunning(running);
        if (running === 0) this.#ctx.progress();
      }, 1_000);
      tick.unref();
      this.#timers.push(tick as unknown as NodeJS.Timeout);
    });
  }

  #attachedMs(): number {
    return this.#attachedAt === undefined ? 0 : Date.now() - this.#attachedAt;
  }

  #clearTimers(): void {
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers = [];
  }

  /** The link died (or never came up): hand the deliveries back to the broker and end this attempt. */
  #lost(error: Error): void {
    // Also during a stop: a handler finishing after the drop must not count as settled.
    this.#consumer?.lost();
    if (this.#ended) return;
    this.#ended = true;
    this.#clearTimers();
    this.#consumer?.lost();
    this.#closeTransport();
    if (isFatalCondition(error)) {
      this.#reject(connectionFailure(this.#options, error));
      return;
    }
    this.#resolve({ attached: this.#consumer !== undefined, attachedMs: this.#attachedMs(), error });
  }

  #closeTransport(): void {
    const connection = this.#connection;
    if (!connection) return;
    try {
      connection.close();
    } catch {
      // The socket may already be gone; closing is best effort.
    }
    setTimeout(() => abortSocket(connection), 1_000).unref();
  }

  /** Graceful stop: settle in-flight work within `graceMs`, then detach (durable) or close the link. */
  async stop(graceMs: number): Promise<void> {
    if (this.#ended) return;
    this.#ended = true;
    this.#clearTimers();
    const consumer = this.#consumer;
    const logger = this.#ctx.logger;
    if (consumer) {
      logger.info({ running: consumer.running, unsettled: consumer.unsettled }, 'amqp:stop:start');
      const { released, abandoned } = await consumer.stop(graceMs);
      logger.info({ released, abandoned }, 'amqp:stop:settled');
    }
    await this.#closeGracefully();
    this.#resolve({ attached: consumer !== undefined, attachedMs: this.#attachedMs(), error: undefined });
  }

  #closeGracefully(): Promise<void> {
    const connection = this.#connection;
    if (!connection || connection.is_closed()) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        resolve();
      };
      const timer = setTimeout(() => {
        abortSocket(connection);
        done();
      }, 2_000);
      connection.once('connection_close', done);
      connection.once('disconnected', done);
      try {
        connection.close();
      } catch {
        done();
      }
    });
  }
}
