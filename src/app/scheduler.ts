import { Worker } from 'bullmq';
import type { RedisClient } from '../queue/connection.js';
import cron from 'node-cron';
import { redisUnavailable } from '../dependency-errors.js';
import type { Logger } from '../observability/logger.js';
import { consolidate, emptyOutcome, type ConsolidationOutcome, type MergeSettings } from '../memory/consolidate.js';
import type { RedisHealth } from '../queue/connection.js';
import type { EngramQueue } from '../queue/queues.js';
import type { JobPayload } from '../queue/schemas.js';
import type { MemoryDb } from '../store/memory-db.js';
import type { Metrics } from '../observability/metrics.js';

export interface SchedulerOptions {
  connection: RedisClient;
  cron: string;
  queue: EngramQueue<'consolidation'>;
  store: MemoryDb;
  /** Near-duplicate merging; without it a pass only expires TTLs. */
  merge?: MergeSettings | undefined;
  metrics: Metrics;
  log: Logger;
  health: RedisHealth;
}

/**
 * node-cron ticks in every scheduler replica; each tick adds a job whose id is derived from the
 * scheduled time, so N replicas still produce one consolidation per tick (BullMQ ignores an add
 * whose job id exists). The consolidation worker runs here too.
 */
export function startScheduler(opts: SchedulerOptions) {
  const log = opts.log.child({ component: 'scheduler', queue: 'consolidation' });
  if (!cron.validate(opts.cron)) throw new Error(`CONSOLIDATION_CRON is not a valid cron expression: ${opts.cron}`);
  const task = cron.schedule(
    opts.cron,
    async (ctx) => {
      const tick = ctx.date.toISOString();
      try {
        await enqueueTick(opts.queue, tick);
        log.debug({ tick }, 'consolidation tick enqueued');
      } catch (err) {
        // During an outage the connections already said Redis is unreachable, once: a tick lost
        // to it is counted with their errors, and said at info, not warned about again.
        if (err instanceof Error && redisUnavailable(err)) {
          opts.health.error(err, { component: 'scheduler', tick });
          log.info({ tick }, 'consolidation tick skipped: redis unreachable');
        } else log.warn({ err, tick }, 'could not enqueue consolidation tick');
      }
    },
    { name: 'engram-consolidation', noOverlap: true },
  );
  // Aborted on close: a pass waiting on the model stops between requests instead of holding the
  // shutdown until the hard exit; its job fails and the next tick starts over.
  const stopping = new AbortController();
  const worker = new Worker<JobPayload<'consolidation'>, ConsolidationOutcome, string>(
    'consolidation',
    async (job) => {
      const jobLog = log.child({ jobId: job.id });
      // Filled as the pass goes, and counted whether it completes or not: a pass that fails
      // part way (a refused key at its tenth namespace, a shutdown) committed its earlier
      // expiries and merges and spent its tokens all the same.
      const outcome = emptyOutcome();
      try {
        return await consolidate(opts.store, `consolidation:${job.id}`, jobLog, opts.merge, stopping.signal, outcome);
      } catch (err) {
        jobLog.warn(outcome, 'consolidation pass failed part way; what it did so far');
        throw err;
      } finally {
        count(opts.metrics, outcome);
      }
    },
    // The queue's prefix: shard 0's hash tag when there are several shards (queues.ts).
    { connection: opts.connection, prefix: opts.queue.opts.prefix, concurrency: 1 },
  );
  worker.on('error', (err) => opts.health.error(err, { component: 'consolidation-worker' }));
  worker.on('failed', (job, err) => log.warn({ jobId: job?.id, err }, 'consolidation failed'));
  return {
    worker,
    async close() {
      await task.stop();
      await task.destroy();
      stopping.abort();
      await worker.close();
    },
  };
}

/** One job per tick fleet-wide: the id comes from the tick's scheduled time, not the replica. */
export function enqueueTick(queue: EngramQueue<'consolidation'>, tickIso: string) {
  // Truncated to the second: replicas' ticks of one schedule agree; ':' is not allowed in ids.
  const second = tickIso.slice(0, 19).replace(/[:.]/g, '-');
  return queue.add('consolidate', { tick: tickIso }, { jobId: `tick-${second}` });
}

/** A pass's outcome in the metrics. */
function count(metrics: Metrics, outcome: ConsolidationOutcome) {
  metrics.consolidatedExpired.inc(outcome.expired);
  metrics.consolidatedMerged.inc(outcome.merged);
  if (outcome.stopped) {
    const { dependency, reason } = outcome.stopped;
    metrics.consolidationStopped.inc({ dependency, reason });
  }
  metrics.modelTokens.inc({ type: 'prompt' }, outcome.usage.promptTokens);
  metrics.modelTokens.inc({ type: 'completion' }, outcome.usage.completionTokens);
}
