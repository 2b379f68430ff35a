import dc from 'node:diagnostics_channel';
import type { Server as HttpServer, IncomingMessage, ServerResponse } from 'node:http';
import { Server as NetServer, type Socket } from 'node:net';
import type { Server as TlsServer } from 'node:tls';

/** How often a draining worker looks for connections that stayed idle past the keep-alive timeout. */
const IDLE_SWEEP_MS = 250;
/** Node's own keep-alive timeout, for servers that disabled theirs (0). */
const DEFAULT_KEEP_ALIVE_MS = 5_000;
/** Node closes an idle connection this long after the `Keep-Alive: timeout` it announced. */
const KEEP_ALIVE_BUFFER_MS = 1_000;

/**
 * Counts requests and tracks in-flight ones on every HTTP server of this process, and drains them.
 * Servers are found three ways: returned by the start function, passed to `track()`, or seen through
 * Node's `http.server.request.start` diagnostics channel (so a throng-style start function that
 * returns nothing is still counted and drained).
 */
export class RequestTracker {
  readonly servers = new Set<NetServer>();
  #requests = 0;
  readonly #sockets = new Set<Socket>();
  #draining = false;
  #requestLimit = Number.POSITIVE_INFINITY;
  #onRequestLimit: (() => void) | undefined;

  constructor() {
    dc.subscribe('http.server.request.start', this.#onRequestStart);
  }

  get requests(): number {
    return this.#requests;
  }

  /**
   * Responses in progress: read from the connections rather than tracked per request, so a request
   * costs a counter increment until a drain begins (heartbeats and drains ask; requests never wait).
   */
  get inFlight(): number {
    let count = 0;
    for (const socket of this.#sockets) if (responseOn(socket)) count++;
    return count;
  }

  /** Open client connections on the tracked servers (idle keep-alive ones included). */
  get connections(): number {
    return this.#sockets.size;
  }

  get draining(): boolean {
    return this.#draining;
  }

  track(server: NetServer): void {
    if (!(server instanceof NetServer)) throw new TypeError('track() expects a net.Server or http.Server');
    if (this.servers.has(server)) return;
    this.servers.add(server);
    // The socket a response is written to: the TLS socket for HTTPS (its TCP socket carries ciphertext and
    // would never be recognised as busy).
    server.on(isTlsServer(server) ? 'secureConnection' : 'connection', this.#onConnection);
    if (this.#draining) void stopAccepting(server);
  }

  /**
   * Calls `onReached` once, the moment the request count reaches `limit` (at once if it already has):
   * exact where a heartbeat-based check would let a busy worker overshoot.
   */
  setRequestLimit(limit: number, onReached: () => void): void {
    this.#requestLimit = limit;
    this.#onRequestLimit = onReached;
    if (this.#requests >= limit) this.#reachRequestLimit();
  }

  /** Addresses of tracked servers that are listening, for logs and the ready message. */
  addresses(): string[] {
    const out: string[] = [];
    for (const server of this.servers) {
      const address = server.address();
      if (address === null) continue;
      out.push(typeof address === 'string' ? address : `${address.address}:${address.port}`);
    }
    return out;
  }

  /**
   * Stops accepting connections and resolves once every tracked server has closed all its connections:
   * - responses not yet started carry `Connection: close`, and so does every request that still arrives
   *   on an open connection, so clients close those connections themselves after reading the answer;
   * - a response whose headers already went out with keep-alive is left alone: its client may reuse
   *   the connection at once, and that next request gets `Connection: close`;
   * - a connection that stays idle is closed only after the keep-alive timeout its server announced
   *   (the `Keep-Alive: timeout=N` header), the moment Node itself would close it and well-behaved
   *   clients have stopped reusing it, so the drain adds no new race with a client sending a request.
   */
  async drain(): Promise<void> {
    this.#draining = true;
    for (const socket of this.#sockets) {
      const response = responseOn(socket);
      if (response) markClosing(response);
    }
    const closed = [...this.servers].map((server) => stopAccepting(server));
    const idleSince = new Map<Socket, { bytes: number; at: number }>();
    const sweep = setInterval(() => this.#closeIdle(idleSince), IDLE_SWEEP_MS);
    try {
      await Promise.all(closed);
    } finally {
      clearInterval(sweep);
    }
  }

  #closeIdle(idleSince: Map<Socket, { bytes: number; at: number }>): void {
    const now = Date.now();
    for (const socket of this.#sockets) {
      const bytes = socket.bytesRead + socket.bytesWritten;
      const seen = idleSince.get(socket);
      if (!seen || responseOn(socket) || isUpgraded(socket) || seen.bytes !== bytes) {
        idleSince.set(socket, { bytes, at: now });
        continue;
      }
      if (now - seen.at >= idleLimit(socket)) socket.end();
    }
  }

  /**
   * Connections that left HTTP through a protocol upgrade (WebSocket...): long-lived, owned by the
   * application, which closes them when `ctx.signal` aborts; never taken for idle keep-alive ones.
   */
  get upgradedConnections(): number {
    let count = 0;
    for (const socket of this.#sockets) if (isUpgraded(socket)) count++;
    return count;
  }

  /** Ends every keep-alive connection with no response in flight (the drain deadline); returns how many. */
  closeIdleConnections(): number {
    let closed = 0;
    for (const socket of this.#sockets) {
      if (responseOn(socket) || isUpgraded(socket)) continue;
      socket.end();
      closed++;
    }
    return closed;
  }

  #onConnection = (socket: Socket): void => {
    this.#sockets.add(socket);
    // A plain function listener gets the socket as `this`: no closure allocated per connection.
    socket.once('close', onSocketClose);
  };

  socketClosed(socket: Socket): void {
    this.#sockets.delete(socket);
  }

  /**
   * Hot path: runs for every request of every HTTP server in this worker. It only counts until a drain
   * begins: no listener, no set, no allocation (in-flight responses are found on the connections).
   */
  #onRequestStart = (message: unknown): void => {
    const { response, server, socket } = message as {
      request: IncomingMessage;
      response: ServerResponse;
      socket: Socket;
      server: NetServer;
    };
    this.#requests++;
    if (!this.servers.has(server)) {
      this.track(server);
      // Its `connection` event for this request has already fired.
      this.#onConnection(socket);
    }
    if (this.#draining) markClosing(response);
    if (this.#requests === this.#requestLimit) this.#reachRequestLimit();
  };

  #reachRequestLimit(): void {
    const onReached = this.#onRequestLimit;
    this.#onRequestLimit = undefined;
    onReached?.();
  }
}

/**
 * Whether `server` is a `tls.Server` (an https or http2 secure server included). Only a server that has
 * TLS's own method is checked against the class, so a worker serving plain HTTP never loads `node:tls`
 * (about 5 ms of CPU at each worker's start, so in each recycle); one that has a TLS server has loaded it.
 */
function isTlsServer(server: NetServer): server is TlsServer {
  if (typeof (server as Partial<TlsServer>).setSecureContext !== 'function') return false;
  return server instanceof process.getBuiltinModule('node:tls').Server;
}

let instance: RequestTracker | undefined;

/** The process-wide tracker, created on first use (only HTTP workers subscribe to the channel). */
export function requestTracker(): RequestTracker {
  instance ??= new RequestTracker();
  return instance;
}

function onSocketClose(this: Socket): void {
  instance?.socketClosed(this);
}

/**
 * The response being written on a connection, if any. Node's HTTP server attaches each response to its
 * socket as `_httpMessage` until the response finishes (pipelined ones wait their turn): the one record of
 * in-flight responses that costs the request path nothing, kept by Node since its first releases.
 */
function responseOn(socket: Socket): ServerResponse | undefined {
  return (socket as Socket & { _httpMessage?: ServerResponse | null })._httpMessage ?? undefined;
}

function markClosing(response: ServerResponse): void {
  if (!response.headersSent) response.setHeader('connection', 'close');
}

/** Node's HTTP server detaches its parser (sets it to null) from a socket it hands over on upgrade. */
function isUpgraded(socket: Socket): boolean {
  return (socket as Socket & { parser?: unknown }).parser === null;
}

function idleLimit(socket: Socket): number {
  const server = (socket as Socket & { server?: HttpServer }).server;
  const keepAlive = server?.keepAliveTimeout || DEFAULT_KEEP_ALIVE_MS;
  return keepAlive + KEEP_ALIVE_BUFFER_MS;
}

/**
 * `net.Server#close` stops accepting without the http.Server override (Node 19+) that also closes idle
 * keep-alive connections at once, which could cut a request a client has just sent.
 */
function stopAccepting(server: NetServer): Promise<void> {
  return new Promise((resolve) => {
    if (!server.listening) {
      server.getConnections((_error, count) => {
        if (!count) return resolve();
        server.once('close', () => resolve());
      });
      return;
    }
    NetServer.prototype.close.call(server, () => resolve());
  });
}
