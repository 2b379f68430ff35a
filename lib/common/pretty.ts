import { Writable } from 'node:stream';
import { closedOutputs } from './closed-output.js';

/** `STEWARD_LOG_FORMAT`: `json` (one pino JSON object a line) or `pretty` (for a person at a terminal). */
export type LogFormat = 'json' | 'pretty';

/** The format asked for by `STEWARD_LOG_FORMAT`, else pretty when stdout is a terminal, else JSON. */
export function logFormat(env = process.env, stdout: { isTTY?: boolean } = process.stdout): LogFormat {
  const asked = env.STEWARD_LOG_FORMAT?.trim().toLowerCase();
  if (asked === 'pretty' || asked === 'json') return asked;
  return stdout.isTTY ? 'pretty' : 'json';
}

const LEVELS: Record<number, [string, string]> = {
  10: ['TRACE', '\x1b[90m'],
  20: ['DEBUG', '\x1b[36m'],
  30: ['INFO ', '\x1b[32m'],
  40: ['WARN ', '\x1b[33m'],
  50: ['ERROR', '\x1b[31m'],
  60: ['FATAL', '\x1b[35m'],
};
/** Shown in the line's prefix or dropped as noise for a reader at a terminal. */
const PREFIX_KEYS = new Set(['level', 'time', 'msg', 'role', 'worker', 'pid', 'hostname', 'service']);

function formatValue(value: unknown): string {
  if (typeof value === 'string') return /[\s"=]/.test(value) ? JSON.stringify(value) : value;
  return JSON.stringify(value) ?? String(value);
}

/**
 * One pino JSON line as `12:00:01.234 INFO  worker 2 (pid 4242) worker:ready bootMs=120`, with the stack
 * of a logged error on the lines after it. Lines that are not pino JSON pass through unchanged.
 */
export function formatPrettyLine(line: string, colour: boolean): string {
  let entry: Record<string, unknown>;
  try {
    entry = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return line;
  }
  const [label, tint] = LEVELS[entry.level as number] ?? [String(entry.level).padEnd(5), ''];
  const time = typeof entry.time === 'number' ? new Date(entry.time).toISOString().slice(11, 23) : '';
  const who = [entry.role, entry.worker === undefined ? undefined : `worker ${entry.worker}`, entry.service]
    .filter((part) => part !== undefined)
    .join(' ');
  const fields: string[] = [];
  const stacks: string[] = [];
  for (const [key, value] of Object.entries(entry)) {
    if (PREFIX_KEYS.has(key)) continue;
    const stack = (value as { stack?: unknown } | null)?.stack;
    if (typeof stack === 'string') {
      stacks.push(stack);
      const { stack: _shown, ...rest } = value as Record<string, unknown>;
      fields.push(`${key}=${formatValue(rest)}`);
    } else fields.push(`${key}=${formatValue(value)}`);
  }
  const head = `${time} ${colour ? `${tint}${label}\x1b[0m` : label} ${who}${entry.pid ? ` (pid ${entry.pid})` : ''}`;
  const message = colour ? `\x1b[1m${String(entry.msg ?? '')}\x1b[0m` : String(entry.msg ?? '');
  return [
    `${head} ${message} ${fields.join(' ')}`.trimEnd(),
    ...stacks.map((stack) => `    ${stack.replace(/\n/g, '\n    ')}`),
  ].join('\n');
}

/** A pino destination that writes pretty lines to stdout (colours when it is a terminal). */
export function prettyDestination(output: NodeJS.WriteStream = process.stdout): Writable {
  const colour = Boolean(output.isTTY) && process.env.NO_COLOR === undefined;
  let pending = '';
  return new Writable({
    write(chunk: Buffer | string, _encoding, done) {
      pending += chunk.toString();
      let newline = pending.indexOf('\n');
      let out = '';
      while (newline >= 0) {
        out += `${formatPrettyLine(pending.slice(0, newline), colour)}\n`;
        pending = pending.slice(newline + 1);
        newline = pending.indexOf('\n');
      }
      if (out && !closedOutputs.has(output)) output.write(out);
      done();
    },
  });
}
