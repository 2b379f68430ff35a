import { createRequire } from 'node:module';
import type { Logger } from 'pino';
import { LEVEL_VALUES, levelThresholdOf } from '../common/log-level.js';
import type { LoggerOption } from '../common/logger.js';
import type { MessagePayloads } from '../common/messages.js';
import { serializeError } from '../errors.js';

const require = createRequire(import.meta.url);

/**
 * The logger's modules (pino, redaction, the pretty format), required when the logger is built: `require()`
 * of an ES module (Node 20.19+, 22.12+) keeps `ctx.logger` a plain synchronous property.
 */
function createLogger(option: LoggerOption, bindings: Record<string, unknown>): Logger {
  return (require('../common/logger.js') as typeof import('../common/logger.js')).createLogger(
    option,
    bindings,
  );
}

/** The levels the agent writes its own lines at. */
export type AgentLevel = 'info' | 'warn' | 'error';

/** What the agent's code logs through. */
export interface AgentLogger extends Record<AgentLevel, (fields: object, msg: string) => void> {
  /**
   * Resolves once every line so far is written or handed to the primary, or after `maxMs` (a primary
   * that reads nothing more): for the last line before `process.exit()`.
   */
  flushed(maxMs?: number): Promise<void>;
}

/** One line of the agent's, as it crosses to the primary: fields as JSON, an error serialized. */
type RelayedLine = MessagePayloads['worker:log'];

/**
 * An HTTP worker's logging. The worker's pino logger (`logger`, the start function's `ctx.logger`) is built
 * when first used: a worker is forked again at every recycle, and pino with its logger and first lines
 * cost about 27 ms of CPU per recycle (docs/benchmarks.md), more than anything else a worker loads. The
 * agent's own lines (the drain, shutdown handlers, dropped IPC messages) are few; until the application
 * logs through `ctx.logger`, they go to the primary (`relay`), which writes them with this worker's pid and
 * bindings through its own logger (`linesOfProcess`): one configuration, one destination, the same line.
 * Once the logger exists, or with no primary to take them, they are written here.
 */
export class WorkerLog implements AgentLogger {
  readonly #option: LoggerOption;
  readonly #bindings: Record<string, unknown>;
  readonly #relay: ((line: RelayedLine) => Promise<boolean>) | undefined;
  readonly #threshold: number | undefined;
  #logger: Logger | undefined;
  #lastRelayed: Promise<unknown> = Promise.resolve();

  constructor(
    option: LoggerOption,
    bindings: Record<string, unknown>,
    /**
     * Sends a line to the primary, resolving once written (false: it could not be, the primary is gone).
     * Undefined: the primary does not take lines.
     */
    relay: ((line: RelayedLine) => Promise<boolean>) | undefined,
  ) {
    this.#option = option;
    this.#bindings = bindings;
    this.#threshold = levelThresholdOf(option);
    // Without a threshold (a logger instance of the application's, custom levels) lines are written here.
    this.#relay = this.#threshold === undefined ? undefined : relay;
  }

  /** The worker's pino logger, created on first use. */
  get logger(): Logger {
    this.#logger ??= createLogger(this.#option, this.#bindings);
    return this.#logger;
  }

  info(fields: object, msg: string): void {
    this.#write('info', fields, msg);
  }

  warn(fields: object, msg: string): void {
    this.#write('warn', fields, msg);
  }

  error(fields: object, msg: string): void {
    this.#write('error', fields, msg);
  }

  flushed(maxMs = 1_000): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const cap = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, maxMs);
    });
    return Promise.race([this.#lastRelayed.then(() => undefined), cap]).finally(() => clearTimeout(timer));
  }

  #write(level: AgentLevel, fields: object, msg: string): void {
    if (this.#logger !== undefined || this.#relay === undefined || !process.connected) {
      this.logger[level](fields, msg);
      return;
    }
    if (LEVEL_VALUES[level]! < this.#threshold!) return;
    // A line the primary could not take (it died meanwhile) is written here.
    this.#lastRelayed = this.#relay({ level, fields: relayable(fields), msg }).then((sent) => {
      if (!sent) this.logger[level](fields, msg);
    });
  }
}

/** Errors become plain objects for the JSON channel; the primary makes them errors again. */
function relayable(fields: object): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(fields))
    out[name] = value instanceof Error ? serializeError(value) : value;
  return out;
}
