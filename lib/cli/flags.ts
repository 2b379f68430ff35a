import { parseArgs } from 'node:util';
import { rejectUnknownKeys } from '../common/option-spec.js';
import { StewardError } from '../errors.js';

/** Exit code of a command line that could not be understood (as in BSD sysexits' EX_USAGE habit: 2). */
export const EXIT_USAGE = 2;

export interface FlagSpec {
  /** `string` flags take a value (`--workers 4` or `--workers=4`); `boolean` flags take none. */
  type: 'string' | 'boolean';
  /** One-letter alias (`-h`). */
  short?: string;
}

export interface ParsedCommandLine {
  values: Record<string, string | boolean | undefined>;
  positionals: string[];
}

export function usageError(message: string, details?: Record<string, unknown>): StewardError {
  return new StewardError('STEWARD_ERR_CLI_USAGE', message, details ? { details } : undefined);
}

/**
 * Parses `args` against `flags` with `node:util` `parseArgs`, then checks what `parseArgs` lets through
 * in its lenient mode, so every problem gets one clear `STEWARD_ERR_CLI_USAGE` message: an unknown flag
 * (with the closest known one), a missing value (`--workers --json` is not "--json workers"), a value
 * given to a switch, or too many positional arguments.
 */
export function parseCommandLine(
  args: string[],
  flags: Record<string, FlagSpec>,
  maxPositionals: number,
): ParsedCommandLine {
  const { tokens } = parseArgs({ args, options: flags, strict: false, allowPositionals: true, tokens: true });
  const values: ParsedCommandLine['values'] = {};
  const positionals: string[] = [];
  const byShort = new Map(
    Object.entries(flags).flatMap(([name, spec]) => (spec.short ? [[spec.short, name]] : [])),
  );
  for (const token of tokens) {
    if (token.kind === 'positional') {
      positionals.push(token.value);
      continue;
    }
    if (token.kind !== 'option') continue;
    const name = token.rawName.startsWith('--') ? token.name : (byShort.get(token.name) ?? token.name);
    const spec = flags[name];
    if (!spec) throw unknownFlag(token.rawName, Object.keys(flags));
    if (spec.type === 'boolean') {
      if (token.value !== undefined) throw usageError(`\`--${name}\` takes no value, got '${token.value}'`);
      values[name] = true;
      continue;
    }
    const value = token.value;
    if (value === undefined || (!token.inlineValue && value.startsWith('-') && value.length > 1)) {
      throw usageError(`\`--${name}\` needs a value`, { flag: `--${name}` });
    }
    values[name] = value;
  }
  if (positionals.length > maxPositionals) {
    throw usageError(`Unexpected argument '${positionals[maxPositionals]}'`, {
      argument: positionals[maxPositionals],
    });
  }
  return { values, positionals };
}

/** The options layer already knows how to suggest the closest name; reuse it for flags. */
function unknownFlag(raw: string, known: string[]): StewardError {
  const name = raw.replace(/^-+/, '');
  try {
    rejectUnknownKeys({ [name]: true }, known, '--');
  } catch (error) {
    const hint = (error as StewardError).details?.suggestion;
    return usageError(`Unknown flag \`${raw}\`.${hint ? ` Did you mean \`${String(hint)}\`?` : ''}`, {
      flag: raw,
      suggestion: hint,
    });
  }
  return usageError(`Unknown flag \`${raw}\``, { flag: raw });
}

/** `'4'` → 4 for integer flags; anything else is passed on as given so validation shows it as typed. */
export function numberOrText(value: string | undefined): number | string | undefined {
  if (value === undefined) return undefined;
  return /^-?\d+$/.test(value.trim()) ? Number(value) : value;
}

const OPTION_ERRORS = new Set([
  'STEWARD_ERR_INVALID_OPTION',
  'STEWARD_ERR_UNKNOWN_OPTION',
  'STEWARD_ERR_OPTION_CONFLICT',
]);

/**
 * An option error from `resolveOptions` (or `runServices`) as a usage error that speaks of flags:
 * ``Expected `recycle.maxRequests` ...`` becomes ``Expected `--max-requests` ...``. Other errors pass.
 */
export function asUsageError(error: unknown, flagOf: Record<string, string>): unknown {
  if (!(error instanceof StewardError) || !OPTION_ERRORS.has(error.code)) return error;
  const message = error.message.replace(/`([A-Za-z][\w.]*)`/g, (quoted, path: string) =>
    flagOf[path] ? `\`--${flagOf[path]}\`` : quoted,
  );
  const option = error.details?.option;
  const flag = typeof option === 'string' && flagOf[option] ? `--${flagOf[option]}` : undefined;
  return new StewardError('STEWARD_ERR_CLI_USAGE', message, {
    cause: error,
    details: { ...error.details, ...(flag ? { flag } : {}) },
  });
}
