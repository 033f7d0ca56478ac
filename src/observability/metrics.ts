import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { EngramQueues } from '../queue/queues.js';
import { QUEUE_NAMES } from '../queue/schemas.js';
import { withTimeout } from '../with-timeout.js';

/** Within a Prometheus scrape's usual 10 s timeout, with room for the rest of the scrape. */
const QUEUE_SCRAPE_TIMEOUT_MS = 2_000;

/** Prometheus metrics of one process, in its own registry (no global singleton). */
export function createMetrics(queues: EngramQueues | null) {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'engram_process_' });
  const metrics = {
    registry,
    turnsEnqueued: new Counter({
      name: 'engram_turns_enqueued_total',
      help: 'Turns accepted on the hot path',
      labelNames: ['result'],
      registers: [registry],
    }),
    reflections: new Counter({
      name: 'engram_reflections_total',
      help: 'Reflection job runs by outcome',
      labelNames: ['status'],
      registers: [registry],
    }),
    reflectionSeconds: new Histogram({
      name: 'engram_reflection_duration_seconds',
      help: 'Wall time of one reflection, model calls included',
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers: [registry],
    }),
    memoryWrites: new Counter({
      name: 'engram_memory_writes_total',
      help: 'Memory writes committed by reflections',
      labelNames: ['op'],
      registers: [registry],
    }),
    modelTokens: new Counter({
      name: 'engram_model_tokens_total',
      help: 'Chat model tokens used by reflections and consolidation merges',
      labelNames: ['type'],
      registers: [registry],
    }),
    consolidatedExpired: new Counter({
      name: 'engram_memories_expired_total',
      help: 'Memories removed by TTL',
      registers: [registry],
    }),
    consolidatedMerged: new Counter({
      name: 'engram_memories_merged_total',
      help: 'Memories removed by consolidation merging them into a near-duplicate',
      registers: [registry],
    }),
  };
  if (queues) {
    new Gauge({
      name: 'engram_queue_jobs',
      help: 'Jobs per queue and state',
      labelNames: ['queue', 'state'],
      registers: [registry],
      async collect() {
        // A scrape answers whatever Redis does: down or stalled, the queue series are left out of
        // it (their absence is the signal) and the process' own series still come through.
        this.reset();
        const read = Promise.all(
          QUEUE_NAMES.map(
            async (name) =>
              [name, await queues[name].getJobCounts('waiting', 'delayed', 'active', 'failed', 'completed')] as const,
          ),
        );
        const counted = await withTimeout(read, QUEUE_SCRAPE_TIMEOUT_MS).catch(() => null);
        for (const [name, counts] of counted ?? []) {
          for (const [state, n] of Object.entries(counts)) this.set({ queue: name, state }, n);
        }
      },
    });
  }
  return metrics;
}
export type Metrics = ReturnType<typeof createMetrics>;
