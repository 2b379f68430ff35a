import { Server } from 'node:net';

/**
 * Notes whether the application calls `listen()` while its start function runs. throng applications often
 * call `app.listen(port)` without returning the server, and background job workers never listen at all:
 * the first kind is ready once the primary sees it listen, the second as soon as its start function
 * returns. `http`, `https` and `tls` servers inherit `net.Server#listen`, so one wrapper sees them all.
 */
export function watchListenCalls(): { readonly called: boolean; stop(): void } {
  const original = Server.prototype.listen;
  let called = false;
  Server.prototype.listen = function listen(this: Server, ...args: unknown[]) {
    called = true;
    return (original as (...rest: unknown[]) => Server).apply(this, args);
  } as typeof original;
  return {
    get called() {
      return called;
    },
    // Only the start function's calls matter; later servers (a debug port...) do not change readiness.
    stop() {
      if (Server.prototype.listen !== original) Server.prototype.listen = original;
    },
  };
}
