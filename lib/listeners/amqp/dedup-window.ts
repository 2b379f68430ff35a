import { createHash } from 'node:crypto';
import type { Message } from 'rhea';

/**
 * A set of keys that forgets its oldest entries past `capacity` (a Map keeps insertion order), so
 * remembering message ids costs bounded memory however long the listener runs.
 */
export class BoundedMap<V> {
  readonly capacity: number;
  readonly #entries = new Map<string, V>();

  constructor(capacity: number) {
    this.capacity = capacity;
  }

  get size(): number {
    return this.#entries.size;
  }

  get(key: string): V | undefined {
    return this.#entries.get(key);
  }

  set(key: string, value: V): void {
    if (this.capacity === 0) return;
    this.#entries.delete(key);
    this.#entries.set(key, value);
    if (this.#entries.size > this.capacity) {
      const oldest = this.#entries.keys().next().value as string;
      this.#entries.delete(oldest);
    }
  }

  delete(key: string): void {
    this.#entries.delete(key);
  }
}

/** The `message_id` as a string, whatever AMQP type it has (string, ulong, uuid, binary); undefined without one. */
export function messageIdOf(message: Message): string | undefined {
  const id = message.message_id as unknown;
  if (id === undefined || id === null) return undefined;
  if (Buffer.isBuffer(id)) return `bin:${id.toString('hex')}`;
  return `${typeof id}:${String(id)}`;
}

function fingerprint(message: Message): string {
  const hash = createHash('sha1');
  const body = message.body as unknown;
  const typed = body as { typecode?: unknown; content?: unknown } | undefined;
  const content = typed && typeof typed === 'object' && 'typecode' in typed ? typed.content : body;
  if (Buffer.isBuffer(content)) hash.update(content);
  else hash.update(JSON.stringify(content ?? null) ?? '');
  hash.update(`\0${String(message.subject ?? '')}\0${JSON.stringify(message.application_properties ?? {})}`);
  return `sha1:${hash.digest('hex')}`;
}

/**
 * Failed deliveries per message, for brokers that do not count redeliveries (RabbitMQ 3.x). Keyed by
 * `message_id`, or by a hash of body, subject and application properties for messages without one,
 * so a poison message still reaches `maxDeliveries`. Counts live in this process only.
 */
export class DeliveryCounter {
  readonly #failures: BoundedMap<number>;

  constructor(capacity: number) {
    this.#failures = new BoundedMap(capacity);
  }

  keyOf(message: Message): string {
    return messageIdOf(message) ?? fingerprint(message);
  }

  /** Failures recorded for this key before now. */
  failures(key: string): number {
    return this.#failures.get(key) ?? 0;
  }

  recordFailure(key: string): number {
    const count = this.failures(key) + 1;
    this.#failures.set(key, count);
    return count;
  }

  forget(key: string): void {
    this.#failures.delete(key);
  }
}

/** Message ids handled successfully, so a redelivered copy is accepted without running the handler again. */
export class DedupWindow {
  readonly #seen: BoundedMap<true>;

  constructor(capacity: number) {
    this.#seen = new BoundedMap(capacity);
  }

  get enabled(): boolean {
    return this.#seen.capacity > 0;
  }

  has(id: string | undefined): boolean {
    return id !== undefined && this.#seen.get(id) === true;
  }

  remember(id: string | undefined): void {
    if (id !== undefined) this.#seen.set(id, true);
  }
}
