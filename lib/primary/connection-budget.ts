import { readFileSync } from 'node:fs';
import type { Socket } from 'node:net';

/** Where a socket stands: whether it has proved itself, and whether a request is being answered. */
interface Tracked {
  /** It sent a complete request that passed authentication (or no token is configured). */
  trusted: boolean;
  /** A request is being answered: never evicted then. */
  busy: boolean;
  /** Destroys the socket when it has not sent a complete request in time. */
  deadline: NodeJS.Timeout | undefined;
}

/** Most sockets the control server keeps, whatever the file-descriptor limit allows. */
const MAX_BUDGET = 2048;

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
 * The sockets of the control server, with a budget and a deadline for each request to arrive. Node's
 * own `server.maxConnections` refuses the newest connection when full, which is the legitimate scrape
 * when idle clients hold the others; here the full budget evicts instead, in this order:
 * 1. sockets that never sent a complete authenticated request (silent, slowloris, 401), oldest first;
 * 2. idle keep-alive sockets of authenticated clients, oldest first;
 * and only when every socket is answering a request is the newcomer refused.
 */
export class ConnectionBudget {
  readonly #limit: number;
  readonly #requestDeadline: number;
  /** Insertion order is connection order: the first match in a scan is the oldest. */
  readonly #sockets = new Map<Socket, Tracked>();
  #evicted = 0;

  /**
   * @param limit sockets kept open at once
   * @param requestDeadline ms a socket has, after connecting or after its last response, to send a
   *   complete request head
   */
  constructor(limit: number, requestDeadline: number) {
    this.#limit = limit;
    this.#requestDeadline = requestDeadline;
  }

  get size(): number {
    return this.#sockets.size;
  }

  /** Sockets dropped to make room so far. */
  get evicted(): number {
    return this.#evicted;
  }

  /** Takes a new connection in, making room first; false when it was refused (and destroyed). */
  admit(socket: Socket): boolean {
    if (this.#sockets.size >= this.#limit && !this.#evictOne()) {
      socket.destroy();
      return false;
    }
    const tracked: Tracked = { trusted: false, busy: false, deadline: undefined };
    this.#sockets.set(socket, tracked);
    this.#arm(socket, tracked);
    socket.once('close', () => {
      clearTimeout(tracked.deadline);
      this.#sockets.delete(socket);
    });
    return true;
  }

  /** A complete request head arrived on `socket`; `authorized` when it carried the token (or none is needed). */
  requestStarted(socket: Socket, authorized: boolean): void {
    const tracked = this.#sockets.get(socket);
    if (!tracked) return;
    clearTimeout(tracked.deadline);
    tracked.deadline = undefined;
    tracked.busy = true;
    if (authorized) tracked.trusted = true;
  }

  /** The response on `socket` was sent: the socket is idle and has a new deadline for its next request. */
  requestFinished(socket: Socket): void {
    const tracked = this.#sockets.get(socket);
    if (!tracked) return;
    tracked.busy = false;
    this.#arm(socket, tracked);
  }

  #arm(socket: Socket, tracked: Tracked): void {
    clearTimeout(tracked.deadline);
    tracked.deadline = setTimeout(() => socket.destroy(), this.#requestDeadline);
    tracked.deadline.unref();
  }

  #evictOne(): boolean {
    for (const trustedPass of [false, true]) {
      for (const [socket, tracked] of this.#sockets) {
        if (tracked.busy || tracked.trusted !== trustedPass) continue;
        this.#sockets.delete(socket);
        clearTimeout(tracked.deadline);
        socket.destroy();
        this.#evicted += 1;
        return true;
      }
    }
    return false;
  }
}
