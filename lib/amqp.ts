/** `cluster-steward/amqp`: the AMQP 1.0 listener (rhea), kept out of processes that do not consume AMQP. */
export { amqpListener } from './listeners/amqp/amqp-listener.js';
export type { BrokerName, RetryOutcome } from './listeners/amqp/broker-profile.js';
export type {
  AmqpDeliveryInfo,
  AmqpHandler,
  AmqpListenerOptions,
  AmqpSubscriptionOptions,
} from './listeners/amqp/options.js';
