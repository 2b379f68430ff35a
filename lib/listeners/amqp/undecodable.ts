import type { Delivery, Receiver } from 'rhea';

/** The parts of rhea's incoming session state this module reads; rhea's typings do not declare them. */
interface IncomingDeliveries {
  get_tail(): (Delivery & { format?: number }) | undefined;
}
interface Incoming {
  deliveries: IncomingDeliveries;
  on_transfer(this: Incoming, frame: unknown, link: unknown): void;
}
interface InternalLink {
  _incomplete?: unknown;
  dispatch(name: string, context: unknown): unknown;
}

/**
 * Makes a message rhea cannot decode fail alone. rhea decodes a delivery's bytes inside its session's
 * transfer handling and lets the decode error escape, which ends the whole connection: the listener
 * reconnects, the broker redelivers the same message first, and the link never gets past it. Here the
 * transfer handling of this receiver's session is wrapped; when it throws after the delivery was fully
 * received and registered (so the session's bookkeeping is complete) but before it reached the link's
 * `message` event, `onUndecodable` gets that delivery to settle (reject) and the connection lives on.
 * Any other error is rethrown unchanged.
 */
export function catchUndecodable(
  receiver: Receiver,
  onUndecodable: (delivery: Delivery, error: Error) => void,
): void {
  const link = receiver as unknown as InternalLink;
  let dispatched: unknown;
  const dispatch = link.dispatch.bind(link);
  link.dispatch = (name, context) => {
    if (name === 'message') dispatched = (context as { delivery?: unknown }).delivery;
    return dispatch(name, context);
  };
  const incoming = (receiver.session as unknown as { incoming: Incoming }).incoming;
  const onTransfer = incoming.on_transfer;
  incoming.on_transfer = function (frame, target) {
    if (target !== link) return onTransfer.call(this, frame, target);
    const partial = link._incomplete as (Delivery & { format?: number }) | undefined;
    const tailBefore = this.deliveries.get_tail();
    dispatched = undefined;
    try {
      onTransfer.call(this, frame, target);
    } catch (error) {
      const delivery = partial ?? this.deliveries.get_tail();
      const isNew = partial !== undefined || delivery !== tailBefore;
      const decodeFailed =
        delivery !== undefined &&
        isNew &&
        link._incomplete === undefined &&
        delivery.format === 0 &&
        dispatched !== delivery;
      if (!decodeFailed) throw error;
      onUndecodable(delivery, error instanceof Error ? error : new Error(String(error)));
    }
  };
}
