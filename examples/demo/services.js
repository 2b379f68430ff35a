// The demo's event daemon. It runs in the services sibling (never in an HTTP worker), so recycling
// workers never stops, pauses or duplicates it. The source depends on the environment:
//   DATABASE_URL  a PostgreSQL event queue (cluster-steward/pg) and a producer enqueuing into it
//   AMQP_URL      an AMQP 1.0 listener (cluster-steward/amqp) and a producer sending to its queue
//   neither       an in-process source generating events on a timer, so the demo runs anywhere
import { defineServices } from 'cluster-steward/services';

/** Events produced per second by each producer. */
const EVENTS_PER_SECOND = 10;

/** The event sources the environment selects, for logs and the page. */
export function eventSources(env) {
  const sources = [];
  if (env.DATABASE_URL) sources.push('postgresql');
  if (env.AMQP_URL) sources.push('amqp');
  return sources.length > 0 ? sources : ['in-process'];
}

export default defineServices(async () => {
  const sources = eventSources(process.env);
  const services = [];
  if (sources.includes('postgresql')) services.push(...(await postgresServices(process.env)));
  if (sources.includes('amqp')) services.push(...(await amqpServices(process.env)));
  if (sources.includes('in-process')) services.push(inProcessEvents());
  return services;
});

/** Pretends to do some work for an event, as a real handler would (a query, an API call). */
function handleEvent() {
  return new Promise((resolve) => setTimeout(resolve, 2));
}

/** Resolves after `ms`, or at once when `signal` aborts. */
function pause(ms, signal) {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}

/**
 * An in-process queue: a timer produces events, the loop handles them one by one and records each in
 * the service status (`processed`, lag, queue depth), which every worker sees through `status()`.
 */
function inProcessEvents() {
  return {
    name: 'demo-events',
    async run(ctx) {
      const queue = [];
      let wake = () => {};
      let nextId = 1;
      const producer = setInterval(() => {
        queue.push({ id: nextId++, createdAt: Date.now() });
        wake();
      }, 1000 / EVENTS_PER_SECOND);
      const onAbort = () => wake();
      ctx.signal.addEventListener('abort', onAbort);
      ctx.setConnected(true);
      ctx.ready();
      try {
        while (!ctx.signal.aborted) {
          const event = queue.shift();
          if (!event) {
            await new Promise((resolve) => {
              wake = resolve;
            });
            continue;
          }
          const started = Date.now();
          await handleEvent(event);
          ctx.recordEvent({
            outcome: 'processed',
            durationMs: Date.now() - started,
            lagMs: started - event.createdAt,
          });
          ctx.setQueueDepth(queue.length, queue[0] ? Date.now() - queue[0].createdAt : 0);
          ctx.progress();
        }
      } finally {
        clearInterval(producer);
        ctx.signal.removeEventListener('abort', onAbort);
        ctx.setConnected(false);
      }
    },
  };
}

/** A PostgreSQL event queue with coalescing, and a producer enqueuing into it. */
async function postgresServices(env) {
  const { enqueue, migrate, pgEventQueue, queueNames } = await import('cluster-steward/pg');
  const { default: pg } = await import('pg');
  const connectionString = env.DATABASE_URL;
  const schema = env.DEMO_PG_SCHEMA ?? 'steward_demo';
  const consumer = pgEventQueue({
    name: 'demo-queue',
    connectionString,
    schema,
    handlers: { 'demo.tick': handleEvent, 'demo.changed': handleEvent },
    // "Something changed, re-read it" events: only the newest of a key runs, older ones are removed.
    coalesce: ['demo.changed'],
    pollInterval: 1_000,
    depthInterval: 1_000,
  });
  const producer = {
    name: 'demo-queue-producer',
    async run(ctx) {
      const pool = new pg.Pool({ connectionString, max: 1 });
      pool.on('error', (error) => ctx.logger.warn({ err: error }, 'demo:producer:error'));
      try {
        // The consumer migrates too, under an advisory lock: whichever starts first creates the table.
        await migrate(pool, queueNames(schema, 'events'), ctx.logger);
        ctx.ready();
        for (let n = 1; !ctx.signal.aborted; n++) {
          await enqueue(
            pool,
            [
              { type: 'demo.tick', key: n % 10 },
              { type: 'demo.changed', key: 'settings', payload: { n } },
            ],
            {
              schema,
            },
          );
          ctx.progress();
          await pause(2000 / EVENTS_PER_SECOND, ctx.signal);
        }
      } finally {
        await pool.end();
      }
    },
  };
  return [consumer, producer];
}

/** An AMQP 1.0 listener on a queue, and a producer sending to the same queue. */
async function amqpServices(env) {
  const { amqpListener } = await import('cluster-steward/amqp');
  const { default: rhea } = await import('rhea');
  const url = new URL(env.AMQP_URL);
  // RabbitMQ's AMQP 1.0 plugin declares a `/queue/NAME` queue on first use, so no setup is needed.
  const address = `/queue/${env.DEMO_AMQP_QUEUE ?? 'cluster-steward-demo'}`;
  const listener = amqpListener({
    name: 'demo-amqp',
    url: env.AMQP_URL,
    address,
    handler: handleEvent,
    concurrency: 4,
  });
  const producer = {
    name: 'demo-amqp-producer',
    async run(ctx) {
      const connection = rhea.create_container().connect({
        host: url.hostname,
        port: Number(url.port || 5672),
        username: decodeURIComponent(url.username) || undefined,
        password: decodeURIComponent(url.password) || undefined,
        reconnect: false,
      });
      const closed = new Promise((resolve, reject) => {
        connection.on('disconnected', (context) =>
          reject(context.error ?? new Error('AMQP producer disconnected')),
        );
        connection.on('connection_close', resolve);
      });
      closed.catch(() => {});
      const sender = connection.open_sender({ target: { address } });
      try {
        await Promise.race([new Promise((resolve) => sender.once('sendable', resolve)), closed]);
        ctx.ready();
        for (let n = 1; !ctx.signal.aborted; n++) {
          if (sender.sendable())
            sender.send({ message_id: `demo-${Date.now()}-${n}`, body: { n }, durable: true });
          ctx.progress();
          await Promise.race([pause(1000 / EVENTS_PER_SECOND, ctx.signal), closed]);
        }
      } finally {
        connection.close();
      }
    },
  };
  return [listener, producer];
}
