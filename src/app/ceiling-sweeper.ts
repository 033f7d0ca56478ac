import type { Logger } from '../log/logger.js';
import type { ThreadBuffer } from '../queue/buffer.js';
import { scheduleReflection, type EngramQueue } from '../queue/queues.js';

/**
 * maxWait (invariant 5): a thread that never goes quiet keeps pushing its delayed job back, so
 * every worker checks the fleet-wide ceilings and pulls due jobs forward (a deduplicated add with
 * delay 0 reschedules the delayed job to now). It also re-creates a job for turns whose schedule
 * was lost (the producer died between its two commands): no accepted turn is stranded.
 * Idempotent, so every replica may run it.
 */
export function startCeilingSweeper(opts: { buffer: ThreadBuffer; queue: EngramQueue<'reflection'>; intervalMs: number; log: Logger }) {
  let running = false;
  const tick = async () => {
    if (running) return;
    running = true;
    try {
      const now = Date.now();
      for (const threadId of await opts.buffer.dueCeilings(now, 100)) {
        await scheduleReflection(opts.queue, threadId, 0);
        // Until the reflection commits and resets it, look again only after a while.
        await opts.buffer.postponeCeiling(threadId, now + Math.max(opts.intervalMs * 30, 30_000));
        opts.log.debug({ threadId }, 'maxWait reached, reflection pulled forward');
      }
    } catch (err) {
      opts.log.warn({ err }, 'ceiling sweep failed');
    } finally {
      running = false;
    }
  };
  const timer = setInterval(() => void tick(), opts.intervalMs);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}
