import { createRequire } from 'node:module';
import type pinoModule from 'pino';

const require = createRequire(import.meta.url);

/**
 * pino, required on first use rather than imported. An ES module importing a CommonJS package makes Node
 * scan the package's source for its export names (cjs-module-lexer) and wrap it; and an HTTP worker that
 * never logs itself (the primary writes its lines, see `worker/worker-log.ts`) never loads pino's 29 files
 * at all (pino, its logger and first lines: about 27 ms of CPU per recycle).
 */
export function loadPino(): typeof pinoModule {
  return require('pino') as typeof pinoModule;
}
