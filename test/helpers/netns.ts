import { execFileSync } from 'node:child_process';
import { randomBytes, randomInt } from 'node:crypto';
import net from 'node:net';

/**
 * Hosts on a real network made of Linux network namespaces: each host is a namespace with one veth
 * link to a bridge in the root namespace. Services that listen on loopback only (PostgreSQL,
 * RabbitMQ) are reached through TCP forwarders bound on the bridge address, so a host's traffic crosses
 * its own link, which a test can cut (`ip link set down`) like a pulled cable.
 */
export interface Lab {
  /** The bridge address, as the hosts see the root namespace. */
  readonly gateway: string;
  readonly hosts: LabHost[];
  /** Forwards `gateway:<returned port>` to `127.0.0.1:targetPort` (in the root namespace). */
  forward(targetPort: number): Promise<number>;
  /** Removes the namespaces, links, bridge and forwarders; safe to call more than once. */
  destroy(): Promise<void>;
}

export interface LabHost {
  /** Network namespace name: run a command in it with `['ip', 'netns', 'exec', name]`. */
  readonly namespace: string;
  readonly address: string;
  /** The command prefix that runs a process on this host. */
  readonly wrapper: string[];
  /** Cuts the host's link (both directions); its sockets stay open, unanswered. */
  partition(): void;
  heal(): void;
  /** Delays every packet on the host's link by `ms` in each direction (`tc qdisc ... netem`). */
  slow(ms: number): void;
}

function tc(...args: string[]): void {
  execFileSync('tc', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

function ip(...args: string[]): void {
  execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

/** Why network namespaces cannot be made here, or null when they can. */
export function netnsUnavailable(): string | null {
  if (process.platform !== 'linux') return `network namespaces need Linux (this is ${process.platform})`;
  if (process.getuid?.() !== 0) return 'creating network namespaces needs root';
  const probe = `stprobe${randomBytes(3).toString('hex')}`;
  try {
    ip('netns', 'add', probe);
  } catch (error) {
    return `\`ip netns add\` failed: ${String((error as { stderr?: Buffer }).stderr ?? error).trim()}`;
  }
  try {
    ip('netns', 'del', probe);
  } catch {
    // Removed with the lab's own cleanup pattern at worst; the probe holds no links.
  }
  return null;
}

/** Why `tc ... netem` cannot delay a link here, or null when it can. */
export function netemUnavailable(): string | null {
  const name = `stq${randomBytes(3).toString('hex')}`;
  try {
    ip('link', 'add', name, 'type', 'veth', 'peer', 'name', `${name}p`);
  } catch (error) {
    return `cannot create a test link: ${String((error as { stderr?: Buffer }).stderr ?? error).trim()}`;
  }
  try {
    tc('qdisc', 'add', 'dev', name, 'root', 'netem', 'delay', '10ms');
    return null;
  } catch (error) {
    const reason = String((error as { stderr?: Buffer }).stderr ?? error).trim();
    return `this kernel cannot run \`tc qdisc add ... netem\` (${reason}): sch_netem is missing`;
  } finally {
    ip('link', 'del', name);
  }
}

/** A TCP forwarder: each accepted connection is piped to `127.0.0.1:targetPort`; either end closing closes both. */
function startForwarder(host: string, targetPort: number): Promise<net.Server> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((downstream) => {
    const upstream = net.connect(targetPort, '127.0.0.1');
    for (const socket of [downstream, upstream]) {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
      socket.on('error', () => {});
    }
    downstream.pipe(upstream);
    upstream.pipe(downstream);
    downstream.on('close', () => upstream.destroy());
    upstream.on('close', () => downstream.destroy());
  });
  server.on('close', () => {
    for (const socket of sockets) socket.destroy();
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, () => resolve(server));
  });
}

/** Creates `count` hosts on a new bridge, with names and a subnet unique to this run. */
export async function createLab(count: number): Promise<Lab> {
  const id = randomBytes(2).toString('hex');
  const subnet = `10.${200 + randomInt(50)}.${randomInt(256)}`;
  const bridge = `stbr${id}`;
  const gateway = `${subnet}.1`;
  const namespaces: string[] = [];
  const links: string[] = [];
  const forwarders: net.Server[] = [];
  let destroyed = false;

  const destroy = async () => {
    if (destroyed) return;
    destroyed = true;
    await Promise.all(forwarders.map((server) => new Promise((resolve) => server.close(resolve))));
    for (const namespace of namespaces) {
      try {
        ip('netns', 'del', namespace);
      } catch {
        // Already gone.
      }
    }
    for (const link of [...links, bridge]) {
      try {
        ip('link', 'del', link);
      } catch {
        // Deleting a namespace removes its veth pair with it.
      }
    }
  };

  try {
    ip('link', 'add', bridge, 'type', 'bridge');
    links.push(bridge);
    ip('addr', 'add', `${gateway}/24`, 'dev', bridge);
    ip('link', 'set', bridge, 'up');
    const hosts: LabHost[] = [];
    for (let index = 0; index < count; index++) {
      const namespace = `stns${id}${index}`;
      const outside = `stv${id}${index}`;
      const inside = `stp${id}${index}`;
      const address = `${subnet}.${10 + index}`;
      ip('netns', 'add', namespace);
      namespaces.push(namespace);
      ip('link', 'add', outside, 'type', 'veth', 'peer', 'name', inside);
      links.push(outside);
      ip('link', 'set', inside, 'netns', namespace);
      ip('link', 'set', outside, 'master', bridge);
      ip('link', 'set', outside, 'up');
      ip('-n', namespace, 'addr', 'add', `${address}/24`, 'dev', inside);
      ip('-n', namespace, 'link', 'set', inside, 'up');
      ip('-n', namespace, 'link', 'set', 'lo', 'up');
      hosts.push({
        namespace,
        address,
        wrapper: ['ip', 'netns', 'exec', namespace],
        partition: () => ip('link', 'set', outside, 'down'),
        heal: () => ip('link', 'set', outside, 'up'),
        slow: (ms) => {
          tc('qdisc', 'replace', 'dev', outside, 'root', 'netem', 'delay', `${ms}ms`);
          execFileSync(
            'ip',
            [
              'netns',
              'exec',
              namespace,
              'tc',
              'qdisc',
              'replace',
              'dev',
              inside,
              'root',
              'netem',
              'delay',
              `${ms}ms`,
            ],
            {
              stdio: ['ignore', 'ignore', 'pipe'],
            },
          );
        },
      });
    }
    return {
      gateway,
      hosts,
      async forward(targetPort) {
        const server = await startForwarder(gateway, targetPort);
        forwarders.push(server);
        return (server.address() as net.AddressInfo).port;
      },
      destroy,
    };
  } catch (error) {
    await destroy();
    throw error;
  }
}

/** A PostgreSQL URL as the lab's hosts reach it: `base` through a forwarder on the bridge's gateway. */
export async function pgUrlThroughLab(lab: Lab, base: string): Promise<string> {
  const url = new URL(base);
  url.port = String(await lab.forward(Number(url.port || 5432)));
  url.hostname = lab.gateway;
  return url.href;
}
