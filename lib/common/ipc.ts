import { StewardError, serializeError } from '../errors.js';
import {
  type DropReason,
  droppedMessages,
  IPC_NAMESPACE,
  inspectMessage,
  type Message,
  type MessagePayloads,
  type MessageType,
  type ReplyOf,
  type ReplyResults,
  type RequestType,
} from './messages.js';

/** The common shape of a cluster Worker, a ChildProcess and `process` in a child. */
export interface IpcPeer {
  send?(message: unknown, callback?: (error: Error | null) => void): boolean;
  on(event: string, listener: (message: unknown) => void): unknown;
  off(event: string, listener: (message: unknown) => void): unknown;
}

type Payload<T extends MessageType> = MessagePayloads[T];
type Listener<T extends MessageType> = (message: Message<T>) => void;
type Handler<T extends RequestType> = (message: Message<T>) => ReplyResults[T] | Promise<ReplyResults[T]>;

interface Pending {
  // The reply of the request this entry was made for: `request()` types it by the request type.
  resolve(value: unknown): void;
  reject(error: Error): void;
  /** The request's message type, for the timeout error. */
  type: MessageType;
  expiresAt: number;
  deadlines: RequestDeadlines;
}

/**
 * The pending requests of one timeout length, by `seq`: in send order, which is also their expiry order,
 * so one timer armed for the oldest serves them all. A services sibling relaying events keeps one request
 * pending per event in flight; a timer per request (with its closure, created and cleared per event) was
 * a tenth of what that relay allocated per event (bench/valve-memory.ts).
 */
interface RequestDeadlines {
  timeoutMs: number;
  seqs: Set<number>;
  timer: NodeJS.Timeout | undefined;
}

export interface IpcChannelOptions {
  /** Name of the peer for error messages ("worker 3", "services sibling"). */
  peerName: string;
  /** Called for every dropped message, after it was counted. */
  onDrop?: (reason: DropReason, type: unknown) => void;
}

/**
 * Typed, validated messaging with one peer process. Requests carry `seq`, replies `ack`; a pending
 * request rejects on timeout and as soon as the peer exits or disconnects (unlike core's cluster
 * internals, which wait forever).
 */
export class IpcChannel {
  readonly #peer: IpcPeer;
  readonly #options: IpcChannelOptions;
  readonly #listeners = new Map<MessageType, Set<Listener<MessageType>>>();
  readonly #pending = new Map<number, Pending>();
  readonly #deadlines = new Map<number, RequestDeadlines>();
  #seq = 0;
  #closed = false;

  constructor(peer: IpcPeer, options: IpcChannelOptions) {
    this.#peer = peer;
    this.#options = options;
    peer.on('message', this.#onMessage);
    peer.on('exit', this.#onGone);
    peer.on('disconnect', this.#onGone);
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Sends a one-way message; returns false when the channel is already closed or the send failed. */
  send<T extends MessageType>(
    type: T,
    payload: Payload<T>,
    correlation?: { seq?: number; ack?: number },
  ): boolean {
    if (this.#closed || typeof this.#peer.send !== 'function') return false;
    const message = { ...payload, ns: IPC_NAMESPACE, type, ...correlation };
    try {
      // The callback swallows asynchronous EPIPE-style failures: a dying peer is handled by #onGone.
      return this.#peer.send(message, () => {});
    } catch {
      return false;
    }
  }

  /**
   * Sends a one-way message and resolves once it was handed to the operating system (true) or could not
   * be sent (false): for a last message right before `process.exit()`, which would otherwise drop it.
   */
  sendFlushed<T extends MessageType>(type: T, payload: Payload<T>): Promise<boolean> {
    return new Promise((resolve) => this.#write({ ...payload, ns: IPC_NAMESPACE, type }, resolve));
  }

  /**
   * Hands `message` to the peer and reports whether it was written: false when the channel is closed, the
   * send threw or the write failed. Node's `send()` also returns false when the message only queued behind
   * a full IPC backlog; it is still delivered, so that is not a failure here.
   */
  #write(message: object, written: (sent: boolean) => void): void {
    if (this.#closed || typeof this.#peer.send !== 'function') {
      written(false);
      return;
    }
    try {
      this.#peer.send(message, (error) => written(error === null || error === undefined));
    } catch {
      written(false);
    }
  }

  /** Sends a request and resolves with the peer's reply result, typed by the request (`ReplyResults`). */
  request<T extends MessageType>(type: T, payload: Payload<T>, timeoutMs: number): Promise<ReplyOf<T>> {
    if (this.#closed) {
      return Promise.reject(
        new StewardError(
          'STEWARD_ERR_IPC_PEER_GONE',
          `${this.#options.peerName} is gone; cannot send ${type}`,
        ),
      );
    }
    const seq = ++this.#seq;
    return new Promise<ReplyOf<T>>((resolve, reject) => {
      let deadlines = this.#deadlines.get(timeoutMs);
      if (deadlines === undefined) {
        deadlines = { timeoutMs, seqs: new Set(), timer: undefined };
        this.#deadlines.set(timeoutMs, deadlines);
      }
      const expiresAt = performance.now() + timeoutMs;
      // `resolve` gets whatever the reply carries: the peer's handler for this request type produced it.
      this.#pending.set(seq, {
        resolve: resolve as (value: unknown) => void,
        reject,
        type,
        expiresAt,
        deadlines,
      });
      deadlines.seqs.add(seq);
      deadlines.timer ??= this.#armDeadline(deadlines, timeoutMs);
      this.#write({ ...payload, ns: IPC_NAMESPACE, type, seq }, (sent) => {
        if (!sent) this.#rejectPending(seq, `${this.#options.peerName} is not connected`);
      });
    });
  }

  #armDeadline(deadlines: RequestDeadlines, delay: number): NodeJS.Timeout {
    return setTimeout(() => this.#expire(deadlines), delay);
  }

  /** Rejects the requests of `deadlines` whose time is up, then re-arms for the oldest one left. */
  #expire(deadlines: RequestDeadlines): void {
    deadlines.timer = undefined;
    const now = performance.now();
    for (const seq of deadlines.seqs) {
      const pending = this.#pending.get(seq)!;
      if (pending.expiresAt > now) {
        deadlines.timer = this.#armDeadline(deadlines, Math.ceil(pending.expiresAt - now));
        return;
      }
      this.#forget(seq, pending);
      pending.reject(
        new StewardError(
          'STEWARD_ERR_IPC_TIMEOUT',
          `${this.#options.peerName} did not answer ${pending.type} within ${deadlines.timeoutMs} ms`,
        ),
      );
    }
  }

  /** The request is settled (or about to be): it leaves the pending map and its deadline queue. */
  #forget(seq: number, pending: Pending): void {
    this.#pending.delete(seq);
    const deadlines = pending.deadlines;
    deadlines.seqs.delete(seq);
    // An idle channel holds no timer: a pending request keeps the process alive, a settled one must not.
    if (deadlines.seqs.size === 0 && deadlines.timer !== undefined) {
      clearTimeout(deadlines.timer);
      deadlines.timer = undefined;
    }
  }

  on<T extends MessageType>(type: T, listener: Listener<T>): this {
    let set = this.#listeners.get(type);
    if (!set) {
      set = new Set();
      this.#listeners.set(type, set);
    }
    set.add(listener as Listener<MessageType>);
    return this;
  }

  /** Answers every `type` request with the handler's (awaited) result or its error. */
  handle<T extends RequestType>(type: T, handler: Handler<T>): this {
    return this.on(type, (message) => {
      const ack = message.seq;
      if (ack === undefined) return;
      Promise.resolve()
        .then(() => handler(message))
        .then(
          (result) => this.send('reply', { ok: true, result }, { ack }),
          (error: unknown) => this.send('reply', { ok: false, error: serializeError(error) }, { ack }),
        );
    });
  }

  /** Stops listening and rejects every pending request. */
  close(reason = 'channel closed'): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#peer.off('message', this.#onMessage);
    this.#peer.off('exit', this.#onGone);
    this.#peer.off('disconnect', this.#onGone);
    for (const seq of [...this.#pending.keys()])
      this.#rejectPending(seq, `${this.#options.peerName}: ${reason}`);
  }

  #onGone = (): void => {
    this.close('peer exited or disconnected');
  };

  #onMessage = (value: unknown): void => {
    const inspected = inspectMessage(value);
    if (inspected.kind === 'foreign') return;
    if (inspected.kind === 'invalid') {
      this.#drop(inspected.reason, (value as { type?: unknown }).type);
      return;
    }
    const message = inspected.message;
    if (message.type === 'reply') {
      this.#settleReply(message);
      return;
    }
    const listeners = this.#listeners.get(message.type);
    if (!listeners) return;
    for (const listener of listeners) listener(message);
  };

  #settleReply(message: Message<'reply'>): void {
    const ack = message.ack as number;
    const pending = this.#pending.get(ack);
    if (!pending) {
      // A reply nobody asked for (late after a timeout, or spoofed) is never trusted.
      this.#drop('unexpected_reply', 'reply');
      return;
    }
    this.#forget(ack, pending);
    if (message.ok) pending.resolve(message.result);
    else pending.reject(Object.assign(new Error(message.error?.message ?? 'remote error'), message.error));
  }

  #rejectPending(seq: number, reason: string): void {
    const pending = this.#pending.get(seq);
    if (!pending) return;
    this.#forget(seq, pending);
    pending.reject(new StewardError('STEWARD_ERR_IPC_PEER_GONE', reason));
  }

  #drop(reason: DropReason, type: unknown): void {
    droppedMessages[reason] += 1;
    this.#options.onDrop?.(reason, type);
  }
}

/**
 * An `onDrop` callback that logs `ipc:dropped` at most once per reason every `intervalMs`, with the
 * number dropped since the last line: a misbehaving peer cannot flood the logs.
 */
export function logDroppedMessages(
  logger: { warn(fields: object, msg: string): void },
  intervalMs = 10_000,
): (reason: DropReason, type: unknown) => void {
  const lastLogged = new Map<DropReason, number>();
  const suppressed = new Map<DropReason, number>();
  return (reason, type) => {
    const now = Date.now();
    if (now - (lastLogged.get(reason) ?? 0) < intervalMs) {
      suppressed.set(reason, (suppressed.get(reason) ?? 0) + 1);
      return;
    }
    lastLogged.set(reason, now);
    const shownType = typeof type === 'string' ? type.slice(0, 64) : typeof type;
    logger.warn({ reason, type: shownType, suppressed: suppressed.get(reason) ?? 0 }, 'ipc:dropped');
    suppressed.set(reason, 0);
  };
}
