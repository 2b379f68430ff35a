import { isIP } from 'node:net';

/**
 * Whether binding `host` keeps a server reachable from this machine only: `localhost`, `127.0.0.0/8`,
 * `::1` and their IPv4-mapped form. Any other name may resolve to a routable address, so it counts as
 * open; `0.0.0.0` and `::` listen on every interface.
 */
export function isLoopbackHost(host: string): boolean {
  const bare = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
  const name = bare.toLowerCase();
  if (name === 'localhost' || name.endsWith('.localhost')) return true;
  const family = isIP(name);
  if (family === 4) return name.startsWith('127.');
  if (family === 6) {
    if (name === '::1' || /^0{0,4}(:0{0,4}){6}:0{0,3}1$/.test(name)) return true;
    const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(name);
    return mapped !== null && mapped[1]!.startsWith('127.');
  }
  return false;
}
