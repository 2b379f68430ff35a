import dc from 'node:diagnostics_channel';
import type { Server as HttpServer, IncomingMessage, ServerResponse } from 'node:http';
import { Server as NetServer } from 'node:net';

/**
 * Counts requests and tracks in-flight ones on every HTTP server of this process, and drains them.
 * Servers are found three ways: returned by the start function, passed to `track()`, or seen through
 * Node's `http.server.request.start` diagnostics channel (so a throng-style start function that
 * returns nothing is still counted and drained).
 */
export class RequestTracker {
  readonly servers = new Set<NetServer>();
  #requests = 0;
  readonly #inFlight = new Set<ServerResponse>();
  #draining = false;

  constructor() {
    dc.subscribe('http.server.request.start', this.#onRequestStart);
  }

  get requests(): number {
    return this.#requests;
  }

  get inFlight(): number {
    return this.#inFlight.size;
  }

  get draining(): boolean {
    return this.#draining;
  }

  track(server: NetServer): void {
    if (!(server instanceof NetServer)) throw new TypeError('track() expects a net.Server or http.Server');
    if (this.servers.has(server)) return;
    this.servers.add(server);
    if (this.#draining) stopAccepting(server);
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
   * Stops accepting connections, lets in-flight requests finish with `Connection: close`, and resolves
   * when every tracked server has closed all its connections. Idle keep-alive connections get
   * `idleGraceMs` to send one more request (answered with `Connection: close`) and are then closed with
   * a FIN, exactly as the server's own `keepAliveTimeout` would close them.
   */
  async drain(idleGraceMs: number): Promise<void> {
    this.#draining = true;
    for (const response of this.#inFlight) markClosing(response);
    const closed = [...this.servers].map((server) => stopAccepting(server));
    const idleTimer = setTimeout(() => {
      for (const server of this.servers) (server as HttpServer).closeIdleConnections?.();
    }, idleGraceMs);
    try {
      await Promise.all(closed);
    } finally {
      clearTimeout(idleTimer);
    }
  }

  /** Hot path: runs for every request of every HTTP server in this worker. */
  #onRequestStart = (message: unknown): void => {
    const { response, server } = message as {
      request: IncomingMessage;
      response: ServerResponse;
      server: NetServer;
    };
    this.#requests++;
    this.#inFlight.add(response);
    // A plain function listener gets the response as `this`: no closure allocated per request.
    response.on('close', onResponseClose);
    if (!this.servers.has(server)) this.track(server);
    if (this.#draining) markClosing(response);
  };

  responseClosed(response: ServerResponse): void {
    this.#inFlight.delete(response);
  }
}

let instance: RequestTracker | undefined;

/** The process-wide tracker, created on first use (only HTTP workers subscribe to the channel). */
export function requestTracker(): RequestTracker {
  instance ??= new RequestTracker();
  return instance;
}

function onResponseClose(this: ServerResponse): void {
  instance?.responseClosed(this);
}

function markClosing(response: ServerResponse): void {
  if (!response.headersSent) response.setHeader('connection', 'close');
  // Headers already out with keep-alive: close the socket once this response is complete.
  else response.shouldKeepAlive = false;
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
