import type { Logger } from 'pino';
import type { Delivery, Message, Receiver } from 'rhea';
import { backoffDelay } from '../../common/backoff.js';
import { redactSecrets } from '../../common/logger.js';
import { coerceError, StewardError } from '../../errors.js';
import type { ServiceContext } from '../../services/types.js';
import { dispatchesToWorkers, type IntakeSource, intakeOf, intakeSource } from '../dispatch.js';
import { runWithTimeout } from '../handler-timeout.js';
import type { ListenerHealth } from '../listener-health.js';
import type { BrokerProfile, RetryOutcome } from './broker-profile.js';
import { CreditWindow } from './credit-window.js';
import { type DedupWindow, type DeliveryCounter, messageIdOf } from './dedup-window.js';
import type { AmqpDeliveryInfo, ResolvedAmqpOptions } from './options.js';

/** One delivery held by the link. */
class Pending {
  readonly message: Message;
  readonly delivery: Delivery;
  /** Set once a disposition was sent (or can no longer be sent): the handler's result is then ignored. */
  done = false;
  controller: AbortController | undefined = undefined;

  constructor(message: Message, delivery: Delivery) {
    this.message = message;
    this.delivery = delivery;
  }

  /** Made on first use: most handlers never read it, and an AbortController per message shows in profiles. */
  get signal(): AbortSignal {
    this.controller ??= new AbortController();
    return this.controller.signal;
  }

  abort(reason: Error): void {
    this.controller ??= new AbortController();
    this.controller.abort(reason);
  }
}

/**
 * What the handler sees of its delivery. A class rather than an object literal with a getter: at
 * thousands of messages a second the literal's per-object getter showed in profiles.
 */
class DeliveryInfo implements AmqpDeliveryInfo {
  readonly attempt: number;
  readonly redelivered: boolean;
  readonly logger: Logger;
  readonly #pending: Pending;

  constructor(pending: Pending, attempt: number, logger: Logger) {
    this.#pending = pending;
    this.attempt = attempt;
    this.redelivered = pending.message.first_acquirer === false || attempt > 1;
    this.logger = logger;
  }

  get signal(): AbortSignal {
    return this.#pending.signal;
  }
}

/** Shared by every link of one listener run: they outlive reconnects. */
export interface ConsumerDeps {
  options: ResolvedAmqpOptions;
  ctx: ServiceContext;
  counter: DeliveryCounter;
  dedup: DedupWindow;
  health: ListenerHealth;
}

type LinkState = 'open' | 'stopping' | 'lost';

/**
 * Consumes one attached receiver link: buffers deliveries within the credit window, runs at most
 * `concurrency` handlers, and settles each delivery only after its handler finished. Once the link is
 * lost nothing is settled any more: the broker owns those deliveries again and redelivers them.
 */
export class LinkConsumer {
  readonly #receiver: Receiver;
  readonly #deps: ConsumerDeps;
  readonly #retryOutcome: RetryOutcome;
  readonly #window: CreditWindow;
  readonly #buffer: Pending[] = [];
  readonly #running = new Set<Pending>();
  /** Failed deliveries waiting out their redelivery delay: unsettled, holding their credit. */
  readonly #delayed = new Map<Pending, NodeJS.Timeout>();
  #state: LinkState = 'open';
  readonly #idleWaiters = new Set<() => void>();
  /** Messages the broker still holds for this link, from its last flow frame minus those received since. */
  #available: number | undefined;
  #depthReportedAt = 0;

  constructor(receiver: Receiver, deps: ConsumerDeps, profile: BrokerProfile, retryOutcome: RetryOutcome) {
    this.#receiver = receiver;
    this.#deps = deps;
    this.#retryOutcome = retryOutcome;
    this.#window = new CreditWindow(deps.options.prefetch, profile.refillWhenEmpty);
    this.#valve = intakeSource(dispatchesToWorkers(deps.options.handler), deps.options.valve);
  }

  /** Behind the workers' valve: credit and concurrency follow it (the backlog stays queued). */
  readonly #valve: IntakeSource | undefined;

  #admitted(bound: number): number {
    return this.#valve ? Math.max(1, Math.min(bound, intakeOf(this.#valve))) : bound;
  }

  /** Handlers running now. */
  get running(): number {
    return this.#running.size;
  }

  /** Deliveries held unsettled (running plus buffered). */
  get unsettled(): number {
    return this.#window.unsettled;
  }

  start(): void {
    this.#grant();
  }

  onMessage(message: Message, delivery: Delivery): void {
    if (this.#state === 'lost') return;
    if (this.#state === 'stopping') {
      // Credit granted before the stop can still bring messages: hand them straight back.
      this.#flushDispositions();
      delivery.release();
      this.#flushDispositions();
      return;
    }
    this.#window.received();
    this.#buffer.push(new Pending(message, delivery));
    if (this.#available !== undefined) this.#reportDepth(Math.max(0, this.#available - 1));
    this.#pump();
  }

  /**
   * A delivery whose bytes rhea could not decode: no handler can ever take it, so it is rejected (the
   * broker dead-letters it) at once, alone; the link and the messages behind it go on.
   */
  onUndecodable(delivery: Delivery, error: Error): void {
    if (this.#state === 'lost') return;
    const { ctx } = this.#deps;
    const deliveryId = (delivery as Delivery & { id?: number }).id;
    ctx.logger.warn({ deliveryId, err: error }, 'amqp:undecodable');
    const counted = this.#state === 'open';
    if (counted) this.#window.received();
    this.#flushDispositions();
    delivery.reject({
      condition: 'amqp:decode-error',
      description: redactSecrets(`the message cannot be decoded: ${error.message}`).slice(0, 512),
    });
    this.#flushDispositions();
    ctx.recordEvent({ outcome: 'dead_lettered' });
    if (!counted) return;
    this.#window.settled();
    this.#grant();
  }

  /**
   * The broker's `available` from a flow frame (RabbitMQ sends it in every reply to a credit grant):
   * the queue depth behind this link, reported to the service status at most every 500 ms, and at once
   * when it reaches 0 so an emptied queue never shows a stale backlog.
   */
  onFlow(available: number): void {
    this.#depthReportedAt = 0;
    this.#reportDepth(available);
  }

  #reportDepth(available: number): void {
    this.#available = available;
    const now = Date.now();
    if (available !== 0 && now - this.#depthReportedAt < 500) return;
    this.#depthReportedAt = now;
    this.#deps.ctx.setQueueDepth(available);
  }

  /**
   * Stops consuming: buffered deliveries are released at once, running handlers get until `graceMs` to
   * finish and be settled; the rest are released and their handlers' signals abort.
   */
  async stop(graceMs: number): Promise<{ released: number; abandoned: number }> {
    if (this.#state !== 'open') return { released: 0, abandoned: 0 };
    this.#state = 'stopping';
    const released = this.#buffer.length;
    for (const pending of this.#buffer.splice(0)) this.#settle(pending, 'released');
    // Failures waiting for their redelivery delay go back now, counted as the failed deliveries they are.
    for (const [pending, timer] of this.#delayed) {
      clearTimeout(timer);
      this.#settle(pending, 'retry');
    }
    this.#delayed.clear();
    await this.#whenIdle(graceMs);
    const abandoned = this.#running.size;
    for (const pending of this.#running) {
      this.#settle(pending, 'released');
      pending.controller?.abort(new Error('listener stopped before the handler finished'));
    }
    return { released, abandoned };
  }

  /** The link or connection died: every unsettled delivery is the broker's again. */
  lost(): void {
    if (this.#state === 'lost') return;
    this.#state = 'lost';
    for (const timer of this.#delayed.values()) clearTimeout(timer);
    for (const pending of [...this.#buffer.splice(0), ...this.#running, ...this.#delayed.keys()]) {
      pending.done = true;
      pending.controller?.abort(new Error('link lost: the broker redelivers this message'));
    }
    this.#window.reset();
  }

  /** Resolves once no handler of this link runs, or after `timeoutMs`. */
  #whenIdle(timeoutMs: number): Promise<void> {
    if (this.#running.size === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.#idleWaiters.delete(done);
        resolve();
      };
      const timer = setTimeout(done, timeoutMs);
      this.#idleWaiters.add(done);
    });
  }

  /** Waits for handlers still running (including those of a lost link), up to `timeoutMs`. */
  settled(timeoutMs: number): Promise<void> {
    return this.#whenIdle(timeoutMs);
  }

  #grant(): void {
    if (this.#state !== 'open') return;
    // rhea keeps the link credit on the receiver without declaring it in its typings.
    const linkCredit = (this.#receiver as Receiver & { credit: number }).credit;
    const credit = this.#window.toGrant(linkCredit, this.#admitted(this.#window.limit));
    if (credit > 0) this.#receiver.add_credit(credit);
  }

  #pump(): void {
    const limit = this.#admitted(this.#deps.options.concurrency);
    while (this.#running.size < limit && this.#buffer.length > 0) {
      const pending = this.#buffer.shift()!;
      this.#running.add(pending);
      void this.#handle(pending).finally(() => this.#finish(pending));
    }
  }

  #finish(pending: Pending): void {
    this.#running.delete(pending);
    if (this.#running.size === 0) for (const done of [...this.#idleWaiters]) done();
    this.#pump();
  }

  #settle(pending: Pending, outcome: 'accepted' | 'released' | 'retry' | 'rejected', reason?: string): void {
    if (pending.done) return;
    pending.done = true;
    const { delivery } = pending;
    if (outcome === 'accepted') delivery.accept();
    else {
      this.#flushDispositions();
      if (outcome === 'released') delivery.release();
      else if (outcome === 'rejected')
        delivery.reject({ condition: 'amqp:internal-error', description: reason ?? 'handler failed' });
      else if (this.#retryOutcome === 'modified') delivery.modified({ delivery_failed: true });
      else delivery.release();
      this.#flushDispositions();
    }
    this.#window.settled();
    this.#grant();
  }

  /**
   * Writes the dispositions rhea has queued, so that a release or reject goes out in a frame of its
   * own. rhea 3.0 merges consecutive delivery ids into one disposition range and compares outcomes only
   * once a range holds two deliveries (`write_dispositions` in rhea/lib/session.js): an accept followed
   * by a release of the next delivery id would be sent as one range "accepted", losing the message.
   * Accepts alone are batched, which is both safe and what makes settlement cheap.
   */
  #flushDispositions(): void {
    const session = this.#receiver.session as unknown as { incoming: { process(session: unknown): void } };
    try {
      session.incoming.process(session);
    } catch {
      // A dead socket: the link-lost path hands every unsettled delivery back to the broker.
    }
  }

  async #handle(pending: Pending): Promise<void> {
    const { options, ctx, counter, dedup } = this.#deps;
    const { message } = pending;
    const id = messageIdOf(message);
    if (dedup.enabled && dedup.has(id)) {
      this.#settle(pending, 'accepted');
      ctx.recordEvent({ outcome: 'duplicate' });
      return;
    }
    const key = counter.keyOf(message);
    const attempt = Math.max((message.delivery_count ?? 0) + 1, counter.failures(key) + 1);
    const started = Date.now();
    const created = message.creation_time instanceof Date ? message.creation_time.getTime() : undefined;
    const lagMs = created === undefined ? undefined : Math.max(0, started - created);
    let failure: unknown;
    let failed = false;
    try {
      const info = new DeliveryInfo(pending, attempt, ctx.logger);
      await runWithTimeout(() => options.handler(message, info), {
        timeout: options.handlerTimeout,
        abort: (reason) => pending.abort(reason),
        fields: { messageId: message.message_id, attempt },
        logger: ctx.logger,
        prefix: 'amqp',
      });
    } catch (error) {
      failed = true;
      failure = error;
    }
    const timedOut = failure instanceof StewardError && failure.code === 'STEWARD_ERR_HANDLER_TIMEOUT';
    this.#deps.health.handlerEnded(timedOut);
    const durationMs = Date.now() - started;
    if (!failed) dedup.remember(id);
    if (pending.done) {
      if (this.#state === 'lost')
        ctx.logger.debug({ messageId: message.message_id, failed }, 'amqp:settle:skipped');
      return;
    }
    if (!failed) {
      counter.forget(key);
      this.#settle(pending, 'accepted');
      ctx.recordEvent({ outcome: 'processed', durationMs, lagMs });
    } else {
      this.#settleFailure(pending, key, attempt, failure, { durationMs, lagMs, timedOut });
    }
    ctx.progress();
  }

  #settleFailure(
    pending: Pending,
    key: string,
    attempt: number,
    failure: unknown,
    measured: { durationMs: number; lagMs: number | undefined; timedOut: boolean },
  ): void {
    const { options, ctx, counter } = this.#deps;
    const error = coerceError(failure);
    const messageId = pending.message.message_id;
    counter.recordFailure(key);
    if (attempt >= options.maxDeliveries) {
      counter.forget(key);
      const reason = redactSecrets(`handler failed on ${attempt} deliveries: ${error.message}`).slice(0, 512);
      this.#settle(pending, 'rejected', reason);
      ctx.recordEvent({ outcome: 'dead_lettered', ...measured });
      ctx.logger.warn({ messageId, attempt, err: error }, 'amqp:message:dead-lettered');
      return;
    }
    ctx.recordEvent({ outcome: 'failed', ...measured });
    const retryInMs = backoffDelay(attempt - 1, options.redeliveryDelay);
    ctx.logger.warn(
      { messageId, attempt, maxDeliveries: options.maxDeliveries, retryInMs, err: error },
      'amqp:message:failed',
    );
    if (retryInMs <= 0) {
      this.#settle(pending, 'retry');
      return;
    }
    // The delivery stays unsettled (its credit held, so the broker does not hand it to another consumer
    // at once); its concurrency slot is already free for other messages.
    const timer = setTimeout(() => {
      this.#delayed.delete(pending);
      this.#settle(pending, 'retry');
    }, retryInMs);
    this.#delayed.set(pending, timer);
  }
}
