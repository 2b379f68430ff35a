// Katello's event daemon, rebuilt on cluster-steward. Two services in the services sibling:
//
//   candlepin-events  AMQP 1.0 listener on Candlepin's event queue. A message is accepted only after its
//                     follow-up work was committed to the event queue (Katello acked first, then handled).
//   katello-events    PostgreSQL event queue: claimed with FOR UPDATE SKIP LOCKED and a lease, coalesced
//                     per key, retried with backoff, dead-lettered; safe on any number of hosts (Katello's
//                     table was claimed without locks, so only one host could run it).

import { amqpListener } from 'cluster-steward/amqp';
import { enqueue, pgEventQueue } from 'cluster-steward/pg';
import { defineServices } from 'cluster-steward/services';
import pg from 'pg';

const connectionString = process.env.DATABASE_URL;
const schema = process.env.KATELLO_SCHEMA ?? 'katello';

/** Candlepin event subject → the Katello event it causes, keyed so repeats of one entity coalesce. */
function katelloEventFor(subject, body) {
  if (/^(pool|entitlement)\.(created|deleted|updated)$/.test(subject))
    return { type: 'import_pool', key: body.poolId ?? body.entityId };
  if (subject === 'compliance.created' || subject === 'system_purpose_compliance.created')
    return { type: 'host_status', key: body.consumerUuid, payload: { status: body.status } };
  return null;
}

/** Stands in for Katello's work: re-reading a pool or a host's status from Candlepin and saving it. */
const refresh = () => new Promise((resolve) => setTimeout(resolve, 5));

export default defineServices(() => {
  // Enqueueing from the AMQP handler; closes its idle connections so it never holds the process open.
  const db = new pg.Pool({ connectionString, max: 2, allowExitOnIdle: true });
  return [
    amqpListener({
      name: 'candlepin-events',
      url: process.env.AMQP_URL,
      // The queue name, written for whichever broker answers (Candlepin's Artemis or RabbitMQ).
      queue: process.env.CANDLEPIN_QUEUE ?? 'katello.candlepin',
      concurrency: 4,
      async handler(message, { logger }) {
        const subject = String(message.subject ?? '');
        const body = typeof message.body === 'string' ? JSON.parse(message.body) : (message.body ?? {});
        const event = katelloEventFor(subject, body);
        if (event === null) return logger.debug({ subject }, 'candlepin:event:ignored');
        // Resolving accepts the message: only once the follow-up event is committed.
        await enqueue(db, event, { schema });
      },
    }),
    pgEventQueue({
      name: 'katello-events',
      connectionString,
      schema,
      handlers: { import_pool: refresh, host_status: refresh },
      // Ten "pool changed" events for one pool waiting in the queue mean one re-import, not ten.
      coalesce: ['import_pool', 'host_status'],
      maxAttempts: 5,
    }),
  ];
});
