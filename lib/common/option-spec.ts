import { StewardError } from '../errors.js';
import { editDistance, invalidOption, optionConflict, requireObject } from './option-checks.js';
import { parseBytes, parseDuration } from './units.js';

/**
 * One option, declared once: its kind, its accepted range (the `expected` text every error quotes), its
 * unit and its default. The input type (what callers may pass) and the output type (what the resolved
 * options hold) are carried as type parameters, so public types, resolved types, default objects and key
 * lists all derive from the spec and cannot drift apart.
 */
export interface Option<In, Out> {
  readonly kind: OptionKind;
  /** The accepted range as errors word it: `an integer between 1 and 1024`. */
  readonly expected: string;
  /** The unit of a number, for the docs: `ms`, `bytes`. */
  readonly unit?: 'ms' | 'bytes';
  /** The value an absent option takes; undefined for options without a default. */
  readonly default?: Out;
  /** Absent options are reported instead of defaulted. */
  readonly required: boolean;
  /** Checks a given value (never undefined) and converts it; throws naming `name`, the range and the value. */
  parse(name: string, value: unknown): Out;
  /** What an absent option becomes. */
  absent(name: string): Out;
  /** Type-only: what callers may pass. */
  readonly input?: In;
}

export type OptionKind =
  | 'integer'
  | 'number'
  | 'duration'
  | 'bytes'
  | 'boolean'
  | 'string'
  | 'enum'
  | 'function'
  | 'group'
  | 'custom';

// biome-ignore lint/suspicious/noExplicitAny: a spec holds options of every input and output type.
export type Spec = Record<string, Option<any, any>>;

type InputOf<O> = O extends Option<infer In, unknown> ? In : never;
type OutputOf<O> = O extends Option<unknown, infer Out> ? Out : never;
type RequiredKeys<S extends Spec> = {
  [K in keyof S]: S[K] extends { required: true } ? K : never;
}[keyof S];

/** Options after defaults and unit parsing: every field present and in range. */
export type Resolved<S extends Spec> = { -readonly [K in keyof S]: OutputOf<S[K]> };

/** What callers may pass: required options required, the others optional. */
export type Input<S extends Spec> = {
  [K in keyof S as K extends RequiredKeys<S> ? K : never]: InputOf<S[K]>;
} & {
  [K in keyof S as K extends RequiredKeys<S> ? never : K]?: InputOf<S[K]>;
};

/** The defaults of a spec, for documentation and tests: options without a default are left out. */
export type Defaults<S extends Spec> = {
  [K in keyof S as undefined extends OutputOf<S[K]> ? never : K]: OutputOf<S[K]>;
};

interface Declared<_In, Out> {
  kind: OptionKind;
  expected: string;
  unit?: 'ms' | 'bytes';
  default?: Out;
  parse(name: string, value: unknown): Out;
}

/** Builds an option from its parser; `required` ones report an absent value with the same message. */
export function option<In, Out>(declared: Declared<In, Out>): Option<In, Out>;
export function option<In, Out>(
  declared: Declared<In, Out>,
  required: true,
): Option<In, Out> & { required: true };
export function option<In, Out>(declared: Declared<In, Out>, required = false): Option<In, Out> {
  const fallback = declared.default;
  return {
    ...declared,
    required,
    absent: required
      ? (name) => declared.parse(name, undefined)
      : // Copies, so a caller changing a resolved array or group never changes the default.
        () => (typeof fallback === 'object' && fallback !== null ? shallowCopy(fallback) : (fallback as Out)),
  };
}

function shallowCopy<T>(value: T): T {
  return (Array.isArray(value) ? [...value] : { ...value }) as T;
}

/** Marks an option as required: its absence is an error naming it. */
export function required<In, Out>(
  declared: Option<In, Out>,
): Option<In, Exclude<Out, undefined>> & { required: true } {
  return option(declared as Declared<In, Exclude<Out, undefined>>, true);
}

function range(min: number, max: number): string {
  return max === Number.MAX_SAFE_INTEGER ? `>= ${min}` : `between ${min} and ${max}`;
}

interface Bounds<D> {
  min: number;
  max?: number;
  default?: D;
}

export function integer<D extends number | undefined = undefined>(
  bounds: Bounds<D>,
): Option<number, number | D> {
  const { min, max = Number.MAX_SAFE_INTEGER } = bounds;
  const expected = `an integer ${range(min, max)}`;
  return option<number, number | D>({
    kind: 'integer',
    expected,
    default: bounds.default,
    parse(name, value) {
      if (!Number.isInteger(value) || (value as number) < min || (value as number) > max)
        throw invalidOption(name, expected, value);
      return value as number;
    },
  });
}

export function fraction<D extends number | undefined = undefined>(
  bounds: Bounds<D> & { max: number },
): Option<number, number | D> {
  const expected = `a number between ${bounds.min} and ${bounds.max}`;
  return option<number, number | D>({
    kind: 'number',
    expected,
    default: bounds.default,
    parse(name, value) {
      if (typeof value !== 'number' || Number.isNaN(value) || value < bounds.min || value > bounds.max)
        throw invalidOption(name, expected, value);
      return value;
    },
  });
}

/** Milliseconds as a number or a `'30s'`-style string; `infinity` accepts `Infinity` for "forever". */
export function duration<D extends number | undefined = undefined>(
  bounds: Bounds<D> & { infinity?: boolean },
): Option<number | string, number | D> {
  const expected = `a duration >= ${bounds.min} ms (integer ms or a string like '30s', '6h')`;
  return option<number | string, number | D>({
    kind: 'duration',
    unit: 'ms',
    expected,
    default: bounds.default,
    parse(name, value) {
      if (bounds.infinity && value === Number.POSITIVE_INFINITY) return value;
      const ms = parseDuration(value);
      if (ms === undefined || !Number.isFinite(ms) || !Number.isInteger(ms) || ms < bounds.min)
        throw invalidOption(name, expected, value);
      return ms;
    },
  });
}

/** Bytes as a number or a `'512MB'`-style string. */
export function bytes(): Option<number | string, number | undefined> {
  const expected = `a size >= 1 byte (integer bytes or a string like '512MB', '1GiB')`;
  return option({
    kind: 'bytes',
    unit: 'bytes',
    expected,
    parse(name, value) {
      const size = parseBytes(value);
      if (size === undefined || !Number.isSafeInteger(size) || size < 1)
        throw invalidOption(name, expected, value);
      return size;
    },
  });
}

/** An option whose values pass one test and are taken as they are. */
function accepting<T, D extends T | undefined>(
  kind: OptionKind,
  accepts: (value: unknown) => value is T,
  expected: string,
  defaultValue: D | undefined,
): Option<T, T | D> {
  return option<T, T | D>({
    kind,
    expected,
    default: defaultValue,
    parse(name, value) {
      if (!accepts(value)) throw invalidOption(name, expected, value);
      return value;
    },
  });
}

export function boolean<D extends boolean | undefined = undefined>(
  defaultValue?: D,
  expected = 'a boolean',
): Option<boolean, boolean | D> {
  return accepting(
    'boolean',
    (value): value is boolean => typeof value === 'boolean',
    expected,
    defaultValue,
  );
}

export function text<D extends string | undefined = undefined>(
  defaultValue?: D,
  expected = 'a non-empty string',
): Option<string, string | D> {
  const nonEmpty = (value: unknown): value is string => typeof value === 'string' && value.length > 0;
  return accepting('string', nonEmpty, expected, defaultValue);
}

export function oneOf<const V extends string>(values: readonly V[], defaultValue: V): Option<V, V> {
  const listed = values.map((value) => `'${value}'`);
  const expected = values.length === 2 ? listed.join(' or ') : `one of ${listed.join(', ')}`;
  return option({
    kind: 'enum',
    expected,
    default: defaultValue,
    parse(name, value) {
      if (!values.includes(value as V)) throw invalidOption(name, expected, value);
      return value as V;
    },
  });
}

// biome-ignore lint/suspicious/noExplicitAny: any function signature the caller names.
export function func<F extends (...args: any[]) => unknown>(): Option<F, F | undefined> {
  return option({
    kind: 'function',
    expected: 'a function',
    parse(name, value) {
      if (typeof value !== 'function') throw invalidOption(name, 'a function', value);
      return value as F;
    },
  });
}

/** Rules over a group's resolved values: defaults that follow each other, combinations refused. */
export type GroupRule<S extends Spec> = (
  resolved: Resolved<S>,
  given: Record<string, unknown>,
  prefix: string,
) => void;

interface GroupShape<S extends Spec> {
  /** Applied after every field resolved, in order. */
  rules?: GroupRule<S>[];
  /** Other names for a key (throng's `count` for `workers`); giving both is a conflict. */
  aliases?: Record<string, keyof S & string>;
  /** Keys accepted and left for someone else to read (the service host's options in a listener's spec). */
  passthrough?: readonly string[];
}

/** A nested object of options; absent, it resolves to all of its defaults. */
export function group<S extends Spec>(spec: S, shape: GroupShape<S> = {}): Option<Input<S>, Resolved<S>> {
  const parse = (name: string, value: unknown) => resolveSpec(spec, value, name, shape);
  return { ...option({ kind: 'group', expected: 'an object', parse }), absent: (name) => parse(name, {}) };
}

/** A group that stays undefined when absent (`control`: no control server). */
export function optionalGroup<S extends Spec>(
  spec: S,
  shape: GroupShape<S> = {},
): Option<Input<S>, Resolved<S> | undefined> {
  return option({
    kind: 'group',
    expected: 'an object',
    parse: (name, value) => resolveSpec(spec, value, name, shape),
  });
}

/** The defaults of every field that has one, nested groups included (an optional group has none). */
export function defaultsOf<S extends Spec>(spec: S): Defaults<S> {
  const defaults: Record<string, unknown> = {};
  for (const [key, entry] of Object.entries(spec)) {
    if (entry.required) continue;
    const value = entry.absent(key);
    if (value !== undefined) defaults[key] = value;
  }
  return defaults as Defaults<S>;
}

/** Every key a group accepts, aliases and pass-through keys included: the list did-you-mean searches. */
export function keysOf<S extends Spec>(spec: S, shape: GroupShape<S> = {}): string[] {
  return [...Object.keys(spec), ...Object.keys(shape.aliases ?? {}), ...(shape.passthrough ?? [])];
}

/**
 * The one resolver: checks that `input` is an object with known keys only (suggesting the closest one),
 * resolves every field under its dotted name (`recycle.maxAge`), then applies the group's rules.
 */
export function resolveSpec<S extends Spec>(
  spec: S,
  input: unknown,
  name: string,
  shape: GroupShape<S> = {},
): Resolved<S> {
  requireObject(name, input);
  const prefix = name === 'options' ? '' : `${name}.`;
  rejectUnknownKeys(input, keysOf(spec, shape), prefix);
  const given: Record<string, unknown> = { ...input };
  const givenAs: Record<string, string> = {};
  for (const [aliasKey, key] of Object.entries(shape.aliases ?? {})) {
    if (given[aliasKey] === undefined) continue;
    if (given[key] !== undefined)
      throw optionConflict(
        `Give \`${prefix}${key}\` or its throng alias \`${prefix}${aliasKey}\`, not both`,
        [`${prefix}${key}`, `${prefix}${aliasKey}`],
      );
    given[key] = given[aliasKey];
    givenAs[key] = aliasKey;
  }
  const resolved: Record<string, unknown> = {};
  for (const [key, entry] of Object.entries(spec)) {
    const optionName = `${prefix}${givenAs[key] ?? key}`;
    resolved[key] = given[key] === undefined ? entry.absent(optionName) : entry.parse(optionName, given[key]);
  }
  for (const rule of shape.rules ?? []) rule(resolved as Resolved<S>, given, prefix);
  return resolved as Resolved<S>;
}

/** Throws for keys not in `known`, suggesting the closest known key. */
export function rejectUnknownKeys(object: object, known: readonly string[], prefix: string): void {
  for (const key of Object.keys(object)) {
    if (known.includes(key)) continue;
    const distance = (candidate: string) => editDistance(key.toLowerCase(), candidate.toLowerCase());
    const closest = [...known].sort((x, y) => distance(x) - distance(y))[0];
    const hint = closest && distance(closest) <= 3 ? ` Did you mean \`${prefix}${closest}\`?` : '';
    throw new StewardError('STEWARD_ERR_UNKNOWN_OPTION', `Unknown option \`${prefix}${key}\`.${hint}`, {
      details: { option: `${prefix}${key}`, suggestion: hint ? `${prefix}${closest}` : undefined },
    });
  }
}
