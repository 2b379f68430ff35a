import { createRequire } from 'node:module';
import type PgModule from 'pg';

/**
 * The `pg` module, loaded without the web-platform globals it does not use here.
 *
 * When pg's `lib/stream.js` loads, it asks whether it runs in a Cloudflare Worker: without a `navigator`
 * global (Node 20 has none) it constructs a `Response`. On Node that global is a lazy getter that loads
 * undici, and undici loads http, http2, tls, zlib, worker_threads and the web streams: about 60 builtin
 * modules, 4 MiB of an idle services sibling (3 under load), for an answer that is always "no" in a
 * `node:cluster` process (bench/valve-memory.ts). So `Response` reads as undefined for that one
 * synchronous load, then its own property comes back untouched; no other code runs meanwhile.
 *
 * pg's ESM entry wraps the same `lib/index.js`, so an application that also imports 'pg' shares this
 * instance (its `types` parsers too). If the application loaded pg first, this load is a cache hit.
 */
function loadPg(): typeof PgModule {
  const require = createRequire(import.meta.url);
  const response = Object.getOwnPropertyDescriptor(globalThis, 'Response');
  if (response === undefined || !response.configurable) return require('pg') as typeof PgModule;
  Object.defineProperty(globalThis, 'Response', { value: undefined, configurable: true, writable: true });
  try {
    return require('pg') as typeof PgModule;
  } finally {
    Object.defineProperty(globalThis, 'Response', response);
  }
}

const pg = loadPg();
export const Pool = pg.Pool;
export type Pool = PgModule.Pool;
export const Client = pg.Client;
export type Client = PgModule.Client;
