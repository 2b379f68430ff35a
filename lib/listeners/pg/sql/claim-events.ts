import type { QueueNames } from '../identifiers.js';
import { type ClaimedRow, prepared, type Queryable, sameKey } from './types.js';

export interface ClaimArgs {
  owner: string;
  limit: number;
  leaseMs: number;
  /** Types this consumer has handlers for; other types stay for other consumers. */
  types: string[];
  /** Types whose handler receives the newest payload of the key. */
  coalesce: string[];
  /**
   * Look only at the oldest `window` due, unleased events of `types` (by id). Without it, a backlog whose keys are all busy is read
   * whole by every claim (each event waits behind an older one of its key); with it, a claim reads the events
   * up to the window's end (those held or waiting for a retry, and the window). Omit it to look at everything.
   */
  window?: number;
}

/** Parameters shared by every claim statement; `$5` and up depend on the variant. */
interface Variant {
  coalescing: boolean;
  windowed: boolean;
}

function windowParam(variant: Variant): string {
  return variant.coalescing ? '$6' : '$5';
}

/** `alias` is due and unleased. */
const free = (alias: string) =>
  `${alias}.run_at <= now() AND (${alias}.locked_until IS NULL OR ${alias}.locked_until < now())`;

/**
 * `alias` is held by this consumer: leased to it with at least half the lease term left (`$3 / 2` ms).
 * Another consumer takes an event only once its lease ran out, so two consumers never both see a key as theirs.
 */
const heldHere = (alias: string) =>
  `${alias}.locked_by = $1 AND ${alias}.locked_until >= now() + $3 * interval '0.5 millisecond'`;

/** `alias` is leased to another consumer. */
const heldElsewhere = (alias: string) => `${alias}.locked_by <> $1 AND ${alias}.locked_until >= now()`;

/**
 * The next event of `alias`'s key after it (beyond what the claim read) is held by another consumer: then
 * `alias` committed after that consumer took the newer events (an enqueue's id is drawn before its commit),
 * and the key is that consumer's until it lets go.
 */
function nextHeldElsewhere(names: QueueNames, alias: string): string {
  return `EXISTS (SELECT 1 FROM (SELECT o.locked_by, o.locked_until FROM ${names.events} o
                                  WHERE ${sameKey('o', alias)} AND o.id > ${alias}.id ORDER BY o.id LIMIT 1) n
                   WHERE ${heldElsewhere('n')})`;
}

/*
 * The rules for a keyed event. An event with a key qualifies when every older event of its (type, key) is
 * held by this consumer (none: it is the key's head) and the next newer one is not held by another
 * consumer: a key belongs to one consumer at a time, which runs its events one by one in id order
 * (queue-consumer.ts), and takes the key's next events while it holds the older ones, so the events of a key
 * with a backlog need no claim round trip each.
 *
 * Only the head of a key can be taken by a consumer that does not hold the key, and `SKIP LOCKED` lets a
 * single claim lock it; a later event is taken only by the holder of all older ones. So what a consumer
 * holds of a key is always its oldest events, and if any newer event is held elsewhere, the first newer
 * one is: that answers "is this key held elsewhere?" for a head that committed after newer events of its
 * key were claimed (the index has no lease column, which keeps leases HOT updates). Coalesced types (`$5`)
 * are never taken behind an event of their key held here: its completion removes them.
 */

/**
 * The whole-queue claim checks each keyed candidate with one walk of its key in the index, in id order:
 * skipping the older events held here, the first two events left must be the candidate itself and a next
 * one not held elsewhere. Keys are compared in byte order, the collation of that index (migration 4).
 */
function walkOfKey(names: QueueNames, variant: Variant): string {
  const notHeld = `o.locked_by IS DISTINCT FROM $1 OR o.locked_until IS NULL
                   OR o.locked_until < now() + $3 * interval '0.5 millisecond'`;
  const olderNotHeld = variant.coalescing ? `${notHeld} OR e.type = ANY($5::text[])` : notHeld;
  return `NOT EXISTS (
            SELECT 1 FROM (SELECT o.id, o.locked_by, o.locked_until FROM ${names.events} o
                            WHERE ${sameKey('o', 'e')} AND (o.id >= e.id OR ${olderNotHeld})
                            ORDER BY o.id LIMIT 2) f
             WHERE f.id < e.id OR (f.id > e.id AND ${heldElsewhere('f')}))`;
}

/**
 * A windowed claim reads the events up to the window's end (`bound.hi`) once and groups them by key:
 * everything older than a candidate is there, so the rules need no walk per event. Leaving out what this
 * consumer holds (except for coalesced types), the first event of a key must be the candidate (which is due
 * and unleased, as every candidate) and nothing of the key may be held elsewhere; the key's next event was
 * read too, so it needs no look-up. A walk per event reads the key's index entries from its start (a whole
 * leaf page for a key with a backlog), which made a claim of 1,000 events over 1,000 keys cost about twice
 * as much.
 *
 * Only keys read more than once are kept: a key read once has a candidate only if that event is it, and then
 * it passes the rules within the window by itself, so only its next event beyond the window is looked up
 * (`nextHeldElsewhere`). With every event its own key, a claim of 1,000 events costs 1.15 to 1.19 times the
 * walk per event (the grouping of the window remains), against 1.23 to 1.32 when every key was kept, stored
 * and hashed once more for the candidates' look-ups. The grouping is by the columns' own collation, which is
 * deterministic (equal means the same bytes, as in the index's "C"): with `COLLATE` the planner has no
 * estimate of the number of keys and sorts the window instead of hashing it.
 */
function windowCtes(names: QueueNames, variant: Variant): string {
  const heldHereLeftOut = variant.coalescing
    ? `((${heldHere('r')}) IS NOT TRUE OR r.type = ANY($5::text[]))`
    : `(${heldHere('r')}) IS NOT TRUE`;
  return `bound AS MATERIALIZED (
            SELECT coalesce((SELECT w.id FROM ${names.events} w
                              WHERE w.type = ANY($4::text[]) AND ${free('w')}
                              ORDER BY w.id OFFSET ${windowParam(variant)}::int LIMIT 1), 9223372036854775807) AS hi
          ), repeated AS MATERIALIZED (
            SELECT r.type, r.key, min(r.id) AS first, NOT bool_or((${heldElsewhere('r')}) IS TRUE) AS first_claimable
              FROM ${names.events} r
             WHERE r.type = ANY($4::text[]) AND r.key IS NOT NULL AND r.id <= (SELECT hi FROM bound)
               AND ${heldHereLeftOut}
             GROUP BY r.type, r.key
            HAVING count(*) > 1
          )`;
}

/**
 * Due, unleased events of the consumer's types, oldest first, with the key rules above. A keyed event
 * checks the keys grouped by `windowCtes` only when one comes up, so an unkeyed claim never groups them.
 */
function candidates(names: QueueNames, variant: Variant): string {
  const keyed = variant.windowed
    ? `e.id <= (SELECT hi FROM bound)
       AND (e.key IS NULL OR e.id IN (SELECT first FROM repeated WHERE first_claimable)
            OR ((e.type, e.key) NOT IN (SELECT type, key FROM repeated) AND NOT ${nextHeldElsewhere(names, 'e')}))`
    : `(e.key IS NULL OR ${walkOfKey(names, variant)})`;
  return `SELECT e.id FROM ${names.events} e
           WHERE e.type = ANY($4::text[]) AND ${free('e')}
             AND ${keyed}
           ORDER BY e.id
           LIMIT $2
           FOR UPDATE SKIP LOCKED`;
}

/** The common table expressions a claim starts with, followed by `more`. */
function withClause(names: QueueNames, variant: Variant, more?: string): string {
  const parts = variant.windowed ? [windowCtes(names, variant)] : [];
  if (more) parts.push(more);
  return parts.length > 0 ? `WITH ${parts.join(', ')}\n` : '';
}

/** `id = ANY(ARRAY(...))` makes the update an index lookup; a join on the candidates hashes the whole table. */
function lease(names: QueueNames, variant: Variant): string {
  return `UPDATE ${names.events} e
             SET locked_by = $1, locked_until = now() + $3 * interval '1 millisecond', attempts = e.attempts + 1
           WHERE e.id = ANY(ARRAY(${candidates(names, variant)}))`;
}

/** Epoch milliseconds rather than timestamptz: pg's Date parsing costs more than the claim itself. */
const TIMES = (alias: string) =>
  `extract(epoch FROM ${alias}.created_at)::float8 * 1000 AS created_ms, extract(epoch FROM now() - ${alias}.created_at)::float8 * 1000 AS lag_ms`;

/** Without coalescing the claim is one UPDATE; the latency of a wake-up is mostly this statement. */
function plainClaim(names: QueueNames, variant: Variant): string {
  return `${withClause(names, variant)}${lease(names, variant)}
          RETURNING e.id, e.type, e.key, e.payload, e.attempts, ${TIMES('e')}, NULL::text AS upto`;
}

/** With coalescing, each claimed event of a coalesced type carries the newest payload of its key. */
function coalescingClaim(names: QueueNames, variant: Variant): string {
  const claimed = `claimed AS (${lease(names, variant)} RETURNING e.id, e.type, e.key, e.payload, e.created_at, e.attempts)`;
  return `${withClause(names, variant, claimed)}
          SELECT c.id, c.type, c.key, c.attempts, ${TIMES('c')},
                 CASE WHEN n.id IS NULL THEN c.payload ELSE n.payload END AS payload,
                 n.id::text AS upto
            FROM claimed c
            LEFT JOIN LATERAL (
              SELECT x.id, x.payload FROM ${names.events} x
               WHERE c.key IS NOT NULL AND c.type = ANY($5::text[]) AND ${sameKey('x', 'c')}
               ORDER BY x.id DESC
               LIMIT 1
            ) n ON true
           ORDER BY c.id`;
}

const statements = new Map<string, ReturnType<typeof prepared>>();

function statementFor(names: QueueNames, variant: Variant) {
  const tag = `${variant.coalescing ? 'c' : 'p'}${variant.windowed ? 'w' : 'a'}`;
  const cacheKey = `${tag}:${names.events}`;
  let statement = statements.get(cacheKey);
  if (statement === undefined) {
    const text = variant.coalescing ? coalescingClaim(names, variant) : plainClaim(names, variant);
    statement = prepared(`steward_claim_${tag}_${names.migrationLock}`, text);
    statements.set(cacheKey, statement);
  }
  return statement;
}

/** Numeric order of bigint ids kept as strings (no leading zeros). */
function byId(a: ClaimedRow, b: ClaimedRow): number {
  return a.id.length - b.id.length || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
}

/** Claims up to `limit` due events in one statement, leased to `owner` for `leaseMs`. */
export async function claimEvents(db: Queryable, names: QueueNames, args: ClaimArgs): Promise<ClaimedRow[]> {
  const coalescing = args.coalesce.length > 0;
  const windowed = args.window !== undefined;
  const values: unknown[] = [args.owner, args.limit, args.leaseMs, args.types];
  if (coalescing) values.push(args.coalesce);
  if (windowed) values.push(args.window);
  const { rows } = await db.query<ClaimedRow>(statementFor(names, { coalescing, windowed }), values);
  // UPDATE ... RETURNING does not keep the candidates' order.
  if (!coalescing) rows.sort(byId);
  return rows;
}
