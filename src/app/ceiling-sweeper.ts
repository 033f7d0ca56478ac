import type { Logger } from '../observability/logger.js';
import type { ThreadBuffer } from '../queue/buffer.js';
import type { RedisHealth } from '../queue/connection.js';
import { redisUnavailable } from '../dependency-errors.js';
import { coerceError } from '../errors.js';
import { ensureReflection, type EngramQueue } from '../queue/queues.js';

/**
 * The safety net of invariants 2 and 5: every thread with pending turns has a ceiling (its
 * oldest pending turn + maxWait). A job's own wake-ups already respect it; a thread still pending
 * past it has lost its job (the producer died between its two calls, an operator removed the
 * job), or its job is running or retrying (a reflection slower than maxWait). The sweeper adds a
 * job with delay 0, a no-op when one exists, active included (ensureReflection says why).
 * Idempotent, so every replica may run it.
 */
export function startCeilingSweeper(opts: {
  buffer: ThreadBuffer;
  queue: EngramQueue<'reflection'>;
  intervalMs: number;
  log: Logger;
  health?: RedisHealth;
}) {
  let running = false;
  const tick = async () => {
    if (running) return;
    running = true;
    try {
      const now = Date.now();
      for (const { threadId, ceiling } of await opts.buffer.dueCeilings(now, 100)) {
        // Until a reflection commits and resets it, look again only after a while. Postponed
        // first, and only if it is still the ceiling read: a thread parked since (its job failed
        // for good; the job parks before it leaves active) or reflected since gets no job here.
        const until = now + Math.max(opts.intervalMs * 30, 30_000);
        if (!(await opts.buffer.postponeCeiling(threadId, ceiling, until))) continue;
        await ensureReflection(opts.queue, threadId);
        opts.log.debug({ threadId }, 'thread past its ceiling: job ensured');
      }
    } catch (thrown) {
      const err = coerceError(thrown);
      if (opts.health && redisUnavailable(err)) opts.health.error(err, { component: 'ceiling-sweeper' });
      else opts.log.warn({ err }, 'ceiling sweep failed');
    } finally {
      running = false;
    }
  };
  const timer = setInterval(() => void tick(), opts.intervalMs);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}
