/**
 * What differs between AMQP 1.0 brokers, measured against RabbitMQ 3.10 (`rabbitmq_amqp1_0` plugin) and
 * taken from the Artemis documentation. docs/amqp.md explains each point.
 */
export type BrokerName = 'rabbitmq' | 'artemis' | 'generic';

/** How a handler failure is settled when the message should come back. */
export type RetryOutcome = 'released' | 'modified';

export interface BrokerProfile {
  name: BrokerName;
  /**
   * RabbitMQ 3.x answers a `modified` disposition by ending the session ("Unrecognised state") and does
   * not list `amqp:modified:list` among the source outcomes, so it retries with `released`.
   */
  retryOutcome: RetryOutcome;
  /**
   * Whether the broker increments the header `delivery_count` on redelivery. RabbitMQ 3.x does not (it
   * only clears `first_acquirer`), so the listener counts failures per message itself.
   */
  countsDeliveries: boolean;
  /**
   * RabbitMQ 3.x turns each flow frame into an absolute credit at the queue while messages granted
   * earlier may still travel from the queue to the link, so a top-up before the credit ran out lets it
   * send more than granted. Such brokers get credit only once the link used it up (see `CreditWindow`).
   */
  refillWhenEmpty: boolean;
  /** The address that consumes an existing queue named `queue`. */
  queueAddress(queue: string): string;
}

const rabbitmq: BrokerProfile = {
  name: 'rabbitmq',
  retryOutcome: 'released',
  countsDeliveries: false,
  refillWhenEmpty: true,
  // `/queue/NAME` and bare names re-declare the queue as non-durable, which fails with
  // PRECONDITION_FAILED on a durable queue; `/amq/queue/NAME` consumes the queue as it was declared.
  queueAddress: (queue) => `/amq/queue/${queue}`,
};

const artemis: BrokerProfile = {
  name: 'artemis',
  // Artemis increments the delivery count on `modified{delivery_failed}` and applies its
  // redelivery delay and max-delivery-attempts address settings.
  retryOutcome: 'modified',
  countsDeliveries: true,
  refillWhenEmpty: false,
  queueAddress: (queue) => queue,
};

const generic: BrokerProfile = {
  name: 'generic',
  retryOutcome: 'modified',
  countsDeliveries: true,
  refillWhenEmpty: false,
  queueAddress: (queue) => queue,
};

export const brokerProfiles: Record<BrokerName, BrokerProfile> = { rabbitmq, artemis, generic };

/** Picks the profile from the `product` property of the broker's open frame. */
export function detectBroker(openProperties: Record<string, unknown> | undefined): BrokerProfile {
  const product = String(openProperties?.product ?? '').toLowerCase();
  if (product.includes('rabbitmq')) return rabbitmq;
  if (product.includes('activemq') || product.includes('artemis')) return artemis;
  return generic;
}

/**
 * The outcome actually used: a broker that lists its supported outcomes on the attached source and
 * leaves out `modified` gets `released` whatever its profile says.
 */
export function retryOutcomeFor(profile: BrokerProfile, sourceOutcomes: unknown): RetryOutcome {
  if (profile.retryOutcome === 'released') return 'released';
  const outcomes = Array.isArray(sourceOutcomes)
    ? sourceOutcomes.map(String)
    : typeof sourceOutcomes === 'string'
      ? [sourceOutcomes]
      : [];
  if (outcomes.length > 0 && !outcomes.includes('amqp:modified:list')) return 'released';
  return 'modified';
}

/**
 * AMQP error conditions that no reconnect can fix: the service crashes with a clear error and the
 * service host applies its own backoff and intensity limit.
 */
const FATAL_CONDITIONS = new Set([
  'amqp:unauthorized-access',
  'amqp:not-found',
  'amqp:precondition-failed',
  'amqp:not-allowed',
  'amqp:invalid-field',
]);

/** TLS verification failures repeat on every attempt, like a wrong password. */
const FATAL_TLS_CODES =
  /^(CERT_|ERR_TLS_CERT|DEPTH_ZERO_SELF_SIGNED_CERT|SELF_SIGNED_CERT|UNABLE_TO_(GET|VERIFY))/;

export function isFatalCondition(error: unknown): boolean {
  if (typeof error !== 'object' || error === null) return false;
  const { condition, code } = error as { condition?: unknown; code?: unknown };
  if (typeof condition === 'string' && FATAL_CONDITIONS.has(condition)) return true;
  return typeof code === 'string' && FATAL_TLS_CODES.test(code);
}
