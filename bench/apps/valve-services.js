// The services of bench/valve.ts: one PostgreSQL queue whose `burn` events run in the HTTP workers.
import { pgEventQueue } from 'cluster-steward/pg';
import { defineServices, toWorkers } from 'cluster-steward/services';

export default defineServices(() => [
  pgEventQueue({
    name: 'valve-bench',
    connectionString: process.env.VALVE_PG,
    schema: process.env.VALVE_SCHEMA,
    concurrency: Number(process.env.VALVE_CONCURRENCY ?? 16),
    batchSize: 50,
    handlers: { burn: toWorkers('burn') },
  }),
]);
