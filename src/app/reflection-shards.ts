import type { ThreadBuffers } from '../queue/thread-buffers.js';
import type { EngramQueue } from '../queue/queues.js';
import { splitConcurrency } from '../queue/shards.js';
import { DependencyOutage, type OutageProbe } from './dependency-outage.js';
import { startReflectionWorker, type ReflectionWorkerOptions } from './reflection-worker.js';

export interface ReflectionShardsOptions extends Omit<
  ReflectionWorkerOptions,
  'queue' | 'buffer' | 'concurrency' | 'outage'
> {
  /** Postgres' and the models' probes: tell an outage from a job's own failure. */
  outageProbes: OutageProbe[];
  /** How often a held process probes the dependency it waits for (ms; 2 s when unset). */
  outagePollMs?: number | undefined;
  /** REFLECTION_CONCURRENCY: the process' total, split over the shards. */
  concurrency: number;
  /** Every shard's reflection queue, shard n's at index n. */
  queues: EngramQueue<'reflection'>[];
  buffers: ThreadBuffers;
}

/**
 * One BullMQ worker and one ceiling sweeper per shard, so that each process consumes every shard
 * and any one process still reflects every thread. The process' concurrency is split evenly over
 * the shards, at least 1 each: below K shards, up to K reflections run at once
 * (docs/decisions.md, "Concurrency split over shards").
 */
export function startReflectionShards(opts: ReflectionShardsOptions) {
  const { queues, buffers, concurrency, outageProbes, outagePollMs, ...common } = opts;
  const outage = new DependencyOutage(
    outageProbes,
    common.log.child({ component: 'reflection-worker' }),
    outagePollMs,
    (hold, held) => common.metrics.reflectionsHeld.set(hold, held ? 1 : 0),
  );
  const split = splitConcurrency(concurrency, queues.length);
  // Said once at start: the operator sized the total against the model's rate limits.
  if (concurrency < queues.length)
    common.log.warn(
      { concurrency, shards: queues.length },
      'REFLECTION_CONCURRENCY is below REDIS_SHARDS: each shard runs at least one reflection, so this process runs up to one per shard at once',
    );
  const workers = queues.map((queue, n) =>
    startReflectionWorker({ ...common, queue, buffer: buffers.at(n), concurrency: split[n] as number, outage }),
  );
  outage.attach(workers.map((w) => w.worker));
  return {
    workers: workers.map((w) => w.worker),
    /** Closes every shard's worker at once, each with the same grace. */
    async close(graceMs: number): Promise<void> {
      outage.stop();
      await Promise.all(workers.map((w) => w.close(graceMs)));
    },
  };
}
