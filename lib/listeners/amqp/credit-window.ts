/**
 * Explicit link credit for one receiver: the credit granted plus the deliveries not yet settled never
 * exceed `limit`, so memory stays bounded whatever the backlog. Credit is granted in batches (once at
 * least `refillAt` slots are free) because every grant is a flow frame and a broker round of work.
 *
 * With `refillWhenEmpty` new credit is granted only once the link used up what it had: RabbitMQ 3.x hands
 * a flow frame to the queue as an absolute credit while messages granted earlier may still travel from
 * the queue to the link, and those arrive on top of the new credit (rhea then logs "Received transfer
 * when credit was 0" and the bound is gone). With nothing outstanding nothing can travel. Reserving the
 * outstanding credit twice (granting `limit - unsettled - 2 * linkCredit`) is not enough in general: the
 * surplus of one grant can still be on its way when the next grant goes out, and RabbitMQ's reply to a
 * grant is written before the messages the queue sent under the old credit, so the client cannot tell
 * when nothing travels any more. Refilling when empty costs one broker round trip per window, a few ms
 * once the grant is not held back by Nagle's algorithm (link-session.ts): bench/amqp.ts measures it.
 */
export class CreditWindow {
  readonly limit: number;
  readonly refillAt: number;
  readonly refillWhenEmpty: boolean;
  #unsettled = 0;

  constructor(limit: number, refillWhenEmpty = false, refillAt = Math.max(1, Math.ceil(limit / 2))) {
    this.limit = limit;
    this.refillWhenEmpty = refillWhenEmpty;
    this.refillAt = Math.min(refillAt, limit);
  }

  /** Deliveries received and not yet settled. */
  get unsettled(): number {
    return this.#unsettled;
  }

  received(): void {
    this.#unsettled++;
  }

  settled(): void {
    if (this.#unsettled > 0) this.#unsettled--;
  }

  /**
   * Credit to add now, given the credit the link still holds; 0 while the free room is below `refillAt`.
   * `limit` lowers the bound for now (a valve admitting less than `limit`); the batch shrinks with it.
   */
  toGrant(linkCredit: number, limit = this.limit): number {
    if (this.refillWhenEmpty && linkCredit > 0) return 0;
    const bound = Math.min(limit, this.limit);
    const room = bound - this.#unsettled - linkCredit;
    return room >= Math.min(this.refillAt, Math.ceil(bound / 2)) ? room : 0;
  }

  /** A new link starts with nothing unsettled: deliveries of the old one are the broker's again. */
  reset(): void {
    this.#unsettled = 0;
  }
}
