import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createRequire } from 'node:module';
import net from 'node:net';
import { promisify } from 'node:util';
import pino, { type Logger } from 'pino';
import type { Message } from 'rhea';
import { ServiceRecord } from '../../lib/services/service-record.js';
import type { Service } from '../../lib/services/types.js';
import type { LogLine } from './process.js';

const rhea = createRequire(import.meta.url)('rhea') as typeof import('rhea');
const run = promisify(execFile);

export const BROKER = { host: '127.0.0.1', port: 5672, username: 'guest', password: 'guest' };

export function uniqueQueue(prefix: string): string {
  return `steward-test-${prefix}-${randomBytes(4).toString('hex')}`;
}

async function rabbitmqctl(...args: string[]): Promise<string> {
  const { stdout } = await run('rabbitmqctl', ['-q', ...args], { timeout: 20_000 });
  return stdout;
}

/**
 * Declares a durable queue the way an operator would (the AMQP 1.0 plugin of RabbitMQ 3.x cannot pass
 * queue arguments), optionally dead-lettering into `<name>.dead` through the default exchange.
 */
export async function declareQueue(name: string, deadLetter = false): Promise<void> {
  const args = deadLetter
    ? `[{<<"x-dead-letter-exchange">>, longstr, <<>>}, {<<"x-dead-letter-routing-key">>, longstr, <<"${name}.dead">>}]`
    : '[]';
  const declare = (queue: string, queueArgs: string) =>
    rabbitmqctl(
      'eval',
      `rabbit_amqqueue:declare(rabbit_misc:r(<<"/">>, queue, <<"${queue}">>), true, false, ${queueArgs}, none, <<"guest">>).`,
    );
  await declare(name, args);
  if (deadLetter) await declare(`${name}.dead`, '[]');
}

export async function deleteQueues(...names: string[]): Promise<void> {
  for (const name of names) await rabbitmqctl('delete_queue', name).catch(() => undefined);
}

/** Ready and unacknowledged message counts as the broker sees them. */
export async function queueCounts(name: string): Promise<{ ready: number; unacked: number }> {
  const out = await rabbitmqctl('list_queues', 'name', 'messages_ready', 'messages_unacknowledged');
  for (const line of out.split('\n')) {
    const [queue, ready, unacked] = line.trim().split(/\s+/);
    if (queue === name) return { ready: Number(ready), unacked: Number(unacked) };
  }
  throw new Error(`queue ${name} not found`);
}

function connect(port = BROKER.port) {
  const container = rhea.create_container();
  const connection = container.connect({ ...BROKER, port, reconnect: false });
  return connection;
}

/**
 * Sends `messages` to `queue` and waits until the broker accepted every one. Any other outcome (rejected,
 * released, modified, the link or connection lost) or no acceptance within `timeoutMs` is an error that
 * says how far it got, so a broker that stops settling fails the test instead of stalling it.
 */
export async function publish(queue: string, messages: Message[], timeoutMs = 30_000): Promise<void> {
  const connection = connect();
  const sender = connection.open_sender({ target: { address: `/amq/queue/${queue}` } });
  let next = 0;
  let accepted = 0;
  let timer: NodeJS.Timeout | undefined;
  try {
    await new Promise<void>((resolve, reject) => {
      const fail = (what: string) =>
        reject(
          new Error(
            `publish to ${queue}: ${what} (${accepted} of ${messages.length} accepted, ${next} sent)`,
          ),
        );
      timer = setTimeout(() => fail(`no acceptance within ${timeoutMs} ms`), timeoutMs);
      const fill = () => {
        while (next < messages.length && sender.sendable())
          sender.send({ durable: true, ...messages[next++]! });
      };
      sender.on('sendable', fill);
      sender.on('accepted', () => {
        if (++accepted === messages.length) resolve();
      });
      for (const outcome of ['rejected', 'released', 'modified'] as const)
        sender.on(outcome, (c) => fail(`${outcome}: ${JSON.stringify(c.delivery?.remote_state)}`));
      sender.on('sender_error', (c) => fail(`link error: ${c.sender?.error ?? 'unknown'}`));
      connection.on('disconnected', (c) => fail(`disconnected: ${c.error ?? 'no error given'}`));
    });
  } finally {
    clearTimeout(timer);
    connection.close();
  }
}

export function messagesWithIds(count: number, prefix = 'm'): Message[] {
  return Array.from({ length: count }, (_, i) => ({ message_id: `${prefix}-${i}`, body: `payload ${i}` }));
}

/**
 * Receives (and accepts) messages from a queue until `until(ids)` holds, rejecting after `timeoutMs`.
 * The ids are the message_ids received, in order, duplicates included.
 */
export async function drainQueue(
  queue: string,
  until: (ids: string[]) => boolean,
  timeoutMs = 15_000,
): Promise<string[]> {
  const connection = connect();
  const receiver = connection.open_receiver({
    source: { address: `/amq/queue/${queue}` },
    credit_window: 200,
  });
  const ids: string[] = [];
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`drain of ${queue} timed out with ${ids.length} messages`)),
        timeoutMs,
      );
      receiver.on('message', (c) => {
        ids.push(String(c.message?.message_id));
        if (until(ids)) {
          clearTimeout(timer);
          resolve();
        }
      });
      if (until(ids)) {
        clearTimeout(timer);
        resolve();
      }
    });
  } finally {
    connection.close();
  }
  return ids;
}

/** A TCP forwarder to the broker whose connections the test can cut, like a network drop. */
export class TcpProxy {
  readonly #server: net.Server;
  readonly #pairs = new Set<[net.Socket, net.Socket]>();
  cuts = 0;

  constructor(target = BROKER.port) {
    this.#server = net.createServer((client) => {
      const upstream = net.connect(target, BROKER.host);
      const pair: [net.Socket, net.Socket] = [client, upstream];
      this.#pairs.add(pair);
      for (const socket of pair) socket.on('error', () => socket.destroy());
      client.pipe(upstream);
      upstream.pipe(client);
      client.on('close', () => {
        upstream.destroy();
        this.#pairs.delete(pair);
      });
      upstream.on('close', () => client.destroy());
    });
  }

  async listen(): Promise<number> {
    this.#server.listen(0, '127.0.0.1');
    await once(this.#server, 'listening');
    return (this.#server.address() as net.AddressInfo).port;
  }

  /** Destroys every forwarded connection at once (both sides), as a dropped network would. */
  cut(): void {
    this.cuts++;
    for (const pair of this.#pairs) for (const socket of pair) socket.destroy();
  }

  /**
   * From now on the current connections lose every byte in both directions without being closed, like a
   * peer that vanished without a FIN; closing one side still closes the other. New connections work.
   */
  blackhole(): void {
    for (const [client, upstream] of this.#pairs) {
      client.unpipe(upstream);
      upstream.unpipe(client);
      // unpipe() leaves the sockets paused: read on (and discard) so a close still travels through.
      for (const socket of [client, upstream]) socket.on('data', () => undefined).resume();
    }
  }

  async close(): Promise<void> {
    this.cut();
    await new Promise((resolve) => this.#server.close(resolve));
  }
}

export interface RunningService {
  record: ServiceRecord;
  logs: LogLine[];
  logger: Logger;
  /** Settles when `run` does: resolved after a stop, rejected on a crash. */
  done: Promise<void>;
  stop(): Promise<void>;
}

/** Runs a service under the host's own context class, with a pino logger captured in memory. */
export function runService(service: Service): RunningService {
  const logs: LogLine[] = [];
  const logger = pino(
    { level: 'debug' },
    {
      write(line: string) {
        logs.push(JSON.parse(line) as LogLine);
      },
    },
  );
  const record = new ServiceRecord(service.name, false);
  const controller = new AbortController();
  const done = service.run(record.createContext(controller.signal, logger.child({ service: service.name })));
  done.catch(() => undefined);
  return {
    record,
    logs,
    logger,
    done,
    async stop() {
      controller.abort();
      await done;
      record.dispose();
    },
  };
}
