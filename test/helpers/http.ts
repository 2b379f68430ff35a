import http from 'node:http';

export interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** One GET on a fresh connection (no agent reuse, so a dead worker's socket is never picked up). */
export function get(
  url: string,
  options: { headers?: Record<string, string>; timeoutMs?: number } = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const request = http.get(url, { agent: false, headers: options.headers }, (response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => {
        body += chunk;
      });
      response.on('end', () =>
        resolve({ status: response.statusCode ?? 0, headers: response.headers, body }),
      );
      response.on('error', reject);
    });
    request.setTimeout(options.timeoutMs ?? 10_000, () => request.destroy(new Error(`GET ${url} timed out`)));
    request.on('error', reject);
  });
}

/** GET and parse JSON. */
export async function getJson<T = Record<string, unknown>>(
  url: string,
  headers?: Record<string, string>,
): Promise<T> {
  const reply = await get(url, headers ? { headers } : {});
  return JSON.parse(reply.body) as T;
}

/** The `host:port` a cluster fixture listens on, read from its first `worker:ready` log line. */
export function addressFromReady(line: Record<string, unknown>): string {
  const addresses = line.addresses as string[] | undefined;
  if (!addresses?.[0]) throw new Error(`worker:ready line without addresses: ${JSON.stringify(line)}`);
  return addresses[0];
}
