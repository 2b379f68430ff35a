// Listener-like services for bench/memory: they handle a small event every 10 ms, nothing else.
import { defineServices } from 'cluster-steward/services';

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
