// The services of memory-services.js, imported the common way (the whole `cluster-steward` entry).
import { defineServices } from 'cluster-steward';

const listener = (name) => ({
  name,
  async run(ctx) {
    ctx.setConnected(true);
    ctx.ready();
    const timer = setInterval(() => {
      ctx.recordEvent({ outcome: 'processed', durationMs: 0.1 });
      ctx.progress();
    }, 10);
    await new Promise((resolve) => ctx.signal.addEventListener('abort', resolve, { once: true }));
    clearInterval(timer);
  },
});

export default defineServices(() => [listener('candlepin-events'), listener('katello-events')]);
