import type { Logger } from 'pino';
import { loadPino } from './load-pino.js';
import { redactDeep, redactText } from './redact.js';

type Formatters = { log?: (object: Record<string, unknown>) => Record<string, unknown> };
type Writable = { write(line: string): unknown };

/**
 * A child of `logger` whose every line is redacted, whoever configured `logger`. pino's own `redact`
 * option only masks known paths and cannot reach text inside `err.message`, so two layers are installed
 * on the child (pino children inherit them, grandchildren included):
 * - the `log` formatter masks secret-named fields and redacts strings, errors and their causes before
 *   serializers run;
 * - the destination stream redacts each finished line as text: the message, a serializer's output, an
 *   error's stack.
 * A logger that is not pino (it has `child` but none of pino's internals) is wrapped so that every
 * argument of every call is redacted instead.
 */
export function redactingChild(logger: Logger, bindings: Record<string, unknown>): Logger {
  const child = logger.child(redactDeep(bindings));
  const { symbols } = loadPino();
  const internals = child as unknown as Record<symbol, unknown>;
  const stream = internals[symbols.streamSym] as Writable | undefined;
  const formatters = internals[symbols.formattersSym] as Formatters | undefined;
  if (stream === undefined || typeof stream.write !== 'function' || formatters === undefined)
    return redactingProxy(child);
  const userLog = formatters.log;
  internals[symbols.formattersSym] = {
    ...formatters,
    log: (object: Record<string, unknown>) => redactDeep(userLog ? userLog(object) : object),
  };
  internals[symbols.streamSym] = redactingStream(stream);
  return child;
}

/**
 * The destination with `write` redacting each line. Everything else (pino.multistream's metadata
 * fields, `flushSync`, `end`) reaches the real stream unchanged.
 */
function redactingStream(stream: Writable): Writable {
  const write = (line: string) => stream.write(redactText(line));
  return new Proxy(stream, {
    get(target, property) {
      if (property === 'write') return write;
      const value = Reflect.get(target, property, target) as unknown;
      return typeof value === 'function' ? value.bind(target) : value;
    },
    set(target, property, value) {
      return Reflect.set(target, property, value, target);
    },
  });
}

const LOGGER_METHODS = new Set(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']);

/** For loggers other than pino: arguments of level methods and `child` bindings are redacted. */
function redactingProxy(logger: Logger): Logger {
  return new Proxy(logger, {
    get(target, property) {
      const value = Reflect.get(target, property, target) as unknown;
      if (typeof value !== 'function') return value;
      if (property === 'child')
        return (bindings: Record<string, unknown>, ...rest: unknown[]) =>
          redactingProxy(value.call(target, redactDeep(bindings), ...rest) as Logger);
      if (typeof property === 'string' && LOGGER_METHODS.has(property))
        return (...args: unknown[]) =>
          value.apply(
            target,
            args.map((arg) => redactDeep(arg)),
          );
      return value.bind(target);
    },
  });
}
