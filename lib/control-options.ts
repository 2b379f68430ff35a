import { isLoopbackHost } from './common/loopback.js';
import { invalidOption } from './common/option-checks.js';
import {
  boolean,
  duration,
  type Input,
  integer,
  option,
  type Resolved,
  required,
  resolveSpec,
  text,
} from './common/option-spec.js';
import { redactText } from './common/redact.js';
import { StewardError } from './errors.js';

const TOKEN_EXPECTED = 'a string of at least 16 characters';

/** The primary's control server: `/metrics` (whole cluster), `/status` (JSON) and `/healthz`. */
export const controlSpec = {
  /** TCP port of the control server (`/metrics`, `/status`, `/healthz`); 0 picks a free port. */
  port: required(integer({ min: 0, max: 65_535 })),
  /** Interface to bind. Loopback unless you mean to expose it. @default '127.0.0.1' */
  host: text('127.0.0.1', 'a non-empty host name or address'),
  /** When set, every request must carry `Authorization: Bearer <token>`. */
  token: option<string, string | undefined>({
    kind: 'string',
    expected: TOKEN_EXPECTED,
    parse(name, value) {
      // A short token is described by its length: the characters themselves are a secret.
      if (typeof value === 'string' && value.length < 16)
        throw invalidOption(name, TOKEN_EXPECTED, `${value.length} characters`);
      if (typeof value !== 'string') throw invalidOption(name, TOKEN_EXPECTED, value);
      return value;
    },
  }),
  /**
   * Lets the control server listen on a non-loopback `host` without a `token`. Refused otherwise
   * (`STEWARD_ERR_CONTROL_UNPROTECTED`): `/status` names every process and service to anyone who can
   * reach the port. Say so only behind a network policy that admits the scraper alone. @default false
   */
  allowUnauthenticated: boolean(false, 'true or false'),
  /**
   * How long a scrape waits for each process's metrics, in ms or `'2s'`. A process that has not answered
   * by then is left out of that scrape (counted in `steward_scrape_errors_total`). @default 2000
   */
  metricsTimeout: duration({ min: 10, default: 2_000 }),
};

export type ControlOptions = Input<typeof controlSpec>;
export type ResolvedControl = Resolved<typeof controlSpec>;

function refuseUnprotected(control: ResolvedControl): void {
  if (control.token !== undefined || control.allowUnauthenticated || isLoopbackHost(control.host)) return;
  throw new StewardError(
    'STEWARD_ERR_CONTROL_UNPROTECTED',
    `\`control.host\` is '${redactText(control.host)}', which is not a loopback address, and no \`control.token\` is set: ` +
      'anyone who can reach the port could read /status and /metrics. Set `control.token` ' +
      '(at least 16 characters), or set `control.allowUnauthenticated: true` (CLI ' +
      '`--control-allow-unauthenticated`) if a network policy ' +
      'already admits only the scraper.',
    { details: { option: 'control.allowUnauthenticated', host: redactText(control.host) } },
  );
}

/** `control` of `steward()`, also of `runServices()` and `cluster-steward services`: false or absent is none. */
export const controlGroup = option<ControlOptions | false, ResolvedControl | undefined>({
  kind: 'group',
  expected: 'an object',
  parse: (name, value) =>
    value === false ? undefined : resolveSpec(controlSpec, value, name, { rules: [refuseUnprotected] }),
});

export function resolveControl(raw: unknown): ResolvedControl | undefined {
  return raw === undefined ? undefined : controlGroup.parse('control', raw);
}
