import { readFileSync } from 'node:fs';
import type { Socket } from 'node:net';

/**
 * Where a socket stands. `silent`: connected, nothing received yet. `head`: bytes arrived, the request
 * head is not complete. `busy`: a request is being answered. `idle`: between requests of a keep-alive
 * connection (or after a refused one), waiting for the next head.
 */
type Phase = 'silent' | 'head' | 'busy' | 'idle';

interface Tracked {
  phase: Phase;
  /** It sent a complete request that passed authentication (or no token is configured). */
  trusted: boolean;
  /** When the socket is destroyed unless it moved on (ms on the `performance.now()` clock); 0: never. */
  deadline: number;
}

/** The time limits of the phases, in ms. */
export interface ConnectionDeadlines {
  /** To complete a request head, from its first byte or from the previous response. */
  readonly head: number;
  /** To answer a request once its head is in. */
  readonly answer: number;
}

/** Most sockets the control server keeps, whatever the file-descriptor limit allows. */
const MAX_BUDGET = 2048;

/** Longest time between two sweeps: a socket outlives its deadline by at most this. */
const MAX_SWEEP_PERIOD = 1_000;

/**
 * How many sockets the control server keeps open: 2048, or half the soft limit on open files if that is
 * lower, so a flood of connections cannot starve the rest of the primary (IPC, PostgreSQL, AMQP) of
 * file descriptors. Node raises the soft limit to the hard limit at startup, so this reads the limit
 * the process actually has (Linux; elsewhere the fixed budget stands).
 */
export function defaultConnectionBudget(): number {
  try {
    const limits = readFileSync('/proc/self/limits', 'utf8');
    const soft = /^Max open files\s+(\d+)/m.exec(limits)?.[1];
    if (soft !== undefined) return Math.max(16, Math.min(MAX_BUDGET, Math.floor(Number(soft) / 2)));
  } catch {
    // No procfs: the fixed budget.
  }
  return MAX_BUDGET;
}

/**
 * The sockets of the control server, with a budget and deadlines. Node's own `server.maxConnections`
 * refuses the newest connection when full, which is the legitimate scrape when idle clients hold the
 * others; here the full budget evicts instead, in this order:
 * 1. sockets that never sent a complete authenticated request (silent, slowloris, 401), oldest first;
 * 2. idle keep-alive sockets of authenticated clients, oldest first;
 * and only when every socket is answering a request is the newcomer refused.
 *
 * A socket that has sent nothing has no deadline: it costs a file descriptor and a few hundred bytes,
 * and closing it while the budget has room only makes a hostile client reconnect, which costs the
 * primary a new socket (and its garbage) every time. It is the first to go when a connection needs the
 * room. Once bytes arrive the head must be complete within `deadlines.head` (slowloris).
 *
 * One timer sweeps every socket, rather than one timer per socket: a flood of connections then costs
 * no timer objects, and the deadlines are plain numbers.
 */
export class ConnectionBudget {
  readonly #limit: number;
  readonly #deadlines: ConnectionDeadlines;
  /** Insertion order is connection order: the first match in a scan is the oldest. */
  readonly #sockets = new Map<Socket, Tracked>();
  readonly #sweeper: NodeJS.Timeout;
  #evicted = 0;
  #expired = 0;

  /** Removes a closed socket; shared by every socket (`this` is the socket) so none needs a closure. */
  readonly #forget: (this: Socket) => void;

  /**
   * @param limit sockets kept open at once
   * @param deadlines ms to complete a request head and to answer a request
   */
  constructor(limit: number, deadlines: ConnectionDeadlines) {
    this.#limit = limit;
    this.#deadlines = deadlines;
    const sockets = this.#sockets;
    this.#forget = function (this: Socket) {
      sockets.delete(this);
    };
    const period = Math.min(MAX_SWEEP_PERIOD, deadlines.head, deadlines.answer);
    this.#sweeper = setInterval(() => this.#sweep(), period);
    this.#sweeper.unref();
  }

  get size(): number {
    return this.#sockets.size;
  }

  /** Sockets dropped to make room so far. */
  get evicted(): number {
    return this.#evicted;
  }

  /** Sockets closed so far because they missed a deadline. */
  get expired(): number {
    return this.#expired;
  }

  /** Takes a new connection in, making room first; false when it was refused (and destroyed). */
  admit(socket: Socket): boolean {
    if (this.#sockets.size >= this.#limit && !this.#evictOne()) {
      socket.destroy();
      return false;
    }
    this.#sockets.set(socket, { phase: 'silent', trusted: false, deadline: 0 });
    // `on`, not `once`: a socket closes once, and `once` would allocate a wrapper per socket.
    socket.on('close', this.#forget);
    return true;
  }

  /** The first bytes of a request head arrived on a silent socket: the head deadline starts. */
  headStarted(socket: Socket): void {
    const tracked = this.#sockets.get(socket);
    if (tracked?.phase !== 'silent') return;
    tracked.phase = 'head';
    tracked.deadline = performance.now() + this.#deadlines.head;
  }

  /** A complete request head arrived on `socket`; `authorized` when it carried the token (or none is needed). */
  requestStarted(socket: Socket, authorized: boolean): void {
    const tracked = this.#sockets.get(socket);
    if (!tracked) return;
    tracked.phase = 'busy';
    tracked.deadline = performance.now() + this.#deadlines.answer;
    if (authorized) tracked.trusted = true;
  }

  /** The response on `socket` was sent: the socket is idle and has a new deadline for its next request. */
  requestFinished(socket: Socket): void {
    const tracked = this.#sockets.get(socket);
    if (!tracked) return;
    tracked.phase = 'idle';
    tracked.deadline = performance.now() + this.#deadlines.head;
  }

  /** Destroys every socket and stops the sweep (the server is closing). */
  close(): void {
    clearInterval(this.#sweeper);
    for (const socket of this.#sockets.keys()) socket.destroy();
    this.#sockets.clear();
  }

  #sweep(): void {
    const now = performance.now();
    for (const [socket, tracked] of this.#sockets) {
      if (tracked.deadline === 0 || tracked.deadline > now) continue;
      this.#sockets.delete(socket);
      socket.destroy();
      this.#expired += 1;
    }
  }

  #evictOne(): boolean {
    for (const trustedPass of [false, true]) {
      for (const [socket, tracked] of this.#sockets) {
        if (tracked.phase === 'busy' || tracked.trusted !== trustedPass) continue;
        this.#sockets.delete(socket);
        socket.destroy();
        this.#evicted += 1;
        return true;
      }
    }
    return false;
  }
}
