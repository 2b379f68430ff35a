import { once } from 'node:events';
import net from 'node:net';

/**
 * A TCP forwarder in front of a shared server (the broker, the database) that a test can take down and
 * bring back on the same port, as if that server stopped and restarted, without touching the server
 * other tests use. While down, connections are refused (nothing listens) and every forwarded one is cut.
 */
export class Forwarder {
  readonly #target: { host: string; port: number };
  readonly #sockets = new Set<net.Socket>();
  #server: net.Server | undefined;
  port = 0;

  constructor(targetPort: number, targetHost = '127.0.0.1') {
    this.#target = { host: targetHost, port: targetPort };
  }

  /** Starts forwarding; on the port it had before, or a free one the first time. */
  async up(): Promise<number> {
    const server = net.createServer((client) => {
      const upstream = net.connect(this.#target.port, this.#target.host);
      for (const socket of [client, upstream]) {
        this.#sockets.add(socket);
        socket.on('error', () => socket.destroy());
        socket.on('close', () => this.#sockets.delete(socket));
      }
      client.pipe(upstream);
      upstream.pipe(client);
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
    });
    server.listen(this.port, '127.0.0.1');
    await once(server, 'listening');
    this.#server = server;
    this.port = (server.address() as net.AddressInfo).port;
    return this.port;
  }

  /** Reserves a free port without listening on it: the server is "down" from the start. */
  async reserve(): Promise<number> {
    await this.up();
    await this.down();
    return this.port;
  }

  /** Stops listening and cuts every forwarded connection. */
  async down(): Promise<void> {
    const server = this.#server;
    this.#server = undefined;
    for (const socket of this.#sockets) socket.destroy();
    if (server) await new Promise((resolve) => server.close(resolve));
  }
}
