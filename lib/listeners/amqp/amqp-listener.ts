import { backoffDelay, delay } from '../../common/backoff.js';
import type { Service, ServiceContext } from '../../services/types.js';
import { ListenerHealth, STABLE_CONNECTION_MS } from '../listener-health.js';
import { DedupWindow, DeliveryCounter } from './dedup-window.js';
import type { ConsumerDeps } from './link-consumer.js';
import { LinkSession } from './link-session.js';
import { type AmqpListenerOptions, type ResolvedAmqpOptions, resolveAmqpOptions } from './options.js';

/** Failure counts kept per message for brokers that do not count redeliveries; bounded, oldest forgotten. */
const DELIVERY_COUNTER_CAPACITY = 10_000;

/** Share of the stop deadline given to running handlers; the rest closes the link and the connection. */
const HANDLER_GRACE_SHARE = 0.7;

/**
 * A service consuming one AMQP 1.0 address with at-least-once settlement: a message is accepted only
 * after its handler succeeded, released (or `modified`) for a retry when it failed, and rejected to the
 * broker's dead-letter path once `maxDeliveries` is reached. Reconnects with jittered backoff; an
 * authentication failure is a crash (STEWARD_ERR_AMQP_CONNECTION) for the service host to back off.
 */
export function amqpListener(input: AmqpListenerOptions): Service {
  const options = resolveAmqpOptions(input);
  const { restart, stallTimeout, singleton } = input;
  return {
    name: options.name,
    stopTimeout: options.stopTimeout,
    ...(restart === undefined ? {} : { restart }),
    ...(stallTimeout === undefined ? {} : { stallTimeout }),
    ...(singleton === undefined ? {} : { singleton }),
    run: (ctx) => consume(options, ctx),
  };
}

async function consume(options: ResolvedAmqpOptions, ctx: ServiceContext): Promise<void> {
  const deps: ConsumerDeps = {
    options,
    ctx,
    counter: new DeliveryCounter(DELIVERY_COUNTER_CAPACITY),
    dedup: new DedupWindow(options.dedupWindow),
    health: new ListenerHealth(ctx, {
      source: `the AMQP broker ${options.host}:${options.port}`,
      concurrency: options.concurrency,
      handlerTimeout: options.handlerTimeout,
    }),
  };
  const graceMs = Math.floor(options.stopTimeout * HANDLER_GRACE_SHARE);
  const sessions = new Set<LinkSession>();
  let failures = 0;
  try {
    while (!ctx.signal.aborted) {
      const session = new LinkSession(deps);
      sessions.add(session);
      const onAbort = () => void session.stop(graceMs);
      ctx.signal.addEventListener('abort', onAbort, { once: true });
      const end = await session.run().finally(() => ctx.signal.removeEventListener('abort', onAbort));
      for (const old of sessions) if (!old.consumer?.running) sessions.delete(old);
      if (ctx.signal.aborted) break;
      ctx.setConnected(false);
      deps.health.disconnected(end.error);
      // Only a link that held starts the backoff over: one dropped at once (refused, or by a fault that
      // comes back with every redelivery) must not reconnect at the initial delay forever.
      failures = end.attachedMs >= STABLE_CONNECTION_MS ? 0 : failures + 1;
      const delayMs = backoffDelay(failures, options.reconnect);
      ctx.logger.warn({ err: end.error, attempt: failures, delayMs }, 'amqp:connection:lost');
      await delay(delayMs, ctx.signal);
    }
  } finally {
    deps.health.dispose();
    ctx.setConnected(false);
    // Handlers of links lost earlier may still run; their messages are the broker's, but the service
    // is only done once its own work is.
    await Promise.all([...sessions].map((session) => session.consumer?.settled(graceMs)));
    ctx.logger.info('amqp:stop:done');
  }
}
