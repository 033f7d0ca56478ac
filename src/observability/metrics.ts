import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { everyQueue, type EngramQueues } from '../queue/queues.js';
import { withTimeout } from '../with-timeout.js';

/** Within a Prometheus scrape's usual 10 s timeout, with room for the rest of the scrape. */
const QUEUE_SCRAPE_TIMEOUT_MS = 2_000;

/** What the thread gauges read from Redis at scrape time (the ThreadBuffer). */
export interface ThreadGauges {
  pendingThreads(): Promise<number>;
  oldestPendingTurnMs(): Promise<number | null>;
  parked(limit: number): Promise<{ count: number }>;
}

/** Durations from a millisecond to a minute: a search, a model request, an HTTP request. */
const SECONDS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

/** Prometheus metrics of one process, in its own registry (no global singleton). */
export function createMetrics(queues: EngramQueues | null, threads: ThreadGauges | null = null) {
  const registry = new Registry();
  // Node's metrics under their conventional names (process_cpu_seconds_total...), which
  // dashboards and alerts written for any Node service expect; engram's own are engram_*.
  collectDefaultMetrics({ register: registry });
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
    reflectionsHeld: new Gauge({
      name: 'engram_reflections_held',
      help: '1 while this process takes no reflection because a dependency is out of reach (reason "unreachable") or its provider refuses every request (reason "rate-limited")',
      labelNames: ['dependency', 'reason'],
      registers: [registry],
    }),
    reflectionSeconds: new Histogram({
      name: 'engram_reflection_duration_seconds',
      help: 'Wall time of one reflection, model calls included',
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers: [registry],
    }),
    promptsNarrowed: new Counter({
      name: 'engram_reflection_prompts_narrowed_total',
      help: 'Reflection prompts the chat model refused as too long, by what the next one left out (fewer-turns, no-earlier, cut-turn)',
      labelNames: ['how'],
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
    consolidationStopped: new Counter({
      name: 'engram_consolidation_stopped_total',
      help: 'Consolidation passes stopped early because a dependency was away for everyone (its probe failed too)',
      labelNames: ['dependency', 'reason'],
      registers: [registry],
    }),
    httpSeconds: new Histogram({
      name: 'engram_http_request_duration_seconds',
      help: 'API requests by method, route (its pattern, not the URL) and status',
      labelNames: ['method', 'route', 'status'],
      buckets: SECONDS,
      registers: [registry],
    }),
    modelSeconds: new Histogram({
      name: 'engram_model_request_duration_seconds',
      help: 'Chat and embedding model calls (retries included) by outcome: ok, or the failure class',
      labelNames: ['model', 'outcome'],
      buckets: SECONDS,
      registers: [registry],
    }),
    searchSeconds: new Histogram({
      name: 'engram_search_duration_seconds',
      help: 'Memory searches (recall, store search) by operation and outcome, embedding included',
      labelNames: ['op', 'outcome'],
      buckets: SECONDS,
      registers: [registry],
    }),
  };
  if (queues) {
    new Gauge({
      name: 'engram_queue_jobs',
      help: 'Jobs per queue (each shard its own reflection queue) and state',
      labelNames: ['queue', 'state'],
      registers: [registry],
      async collect() {
        // A scrape answers whatever Redis does: down or stalled, the queue series are left out of
        // it (their absence is the signal) and the process' own series still come through.
        this.reset();
        const read = Promise.all(
          everyQueue(queues).map(
            async (q) => [q.name, await q.getJobCounts('waiting', 'delayed', 'active', 'failed', 'completed')] as const,
          ),
        );
        const counted = await withTimeout(read, QUEUE_SCRAPE_TIMEOUT_MS).catch(() => null);
        for (const [name, counts] of counted ?? []) {
          for (const [state, n] of Object.entries(counts)) this.set({ queue: name, state }, n);
        }
      },
    });
  }
  if (threads) registerThreadGauges(registry, threads);
  return metrics;
}
export type Metrics = ReturnType<typeof createMetrics>;

/** Read at scrape time, like the queue gauges: left out of a scrape when Redis does not answer. */
function registerThreadGauges(registry: Registry, threads: ThreadGauges) {
  const gauge = (name: string, help: string, read: () => Promise<number | null>) =>
    new Gauge({
      name,
      help,
      registers: [registry],
      async collect() {
        this.reset();
        const value = await withTimeout(read(), QUEUE_SCRAPE_TIMEOUT_MS).catch(() => null);
        if (value !== null) this.set(value);
      },
    });
  gauge('engram_pending_threads', 'Threads with turns waiting for a reflection (parked ones aside)', () =>
    threads.pendingThreads(),
  );
  gauge(
    'engram_oldest_pending_turn_age_seconds',
    'Age of the oldest turn waiting for a reflection, among the 100 threads nearest their maxWait ceiling (0: none)',
    async () => {
      const oldest = await threads.oldestPendingTurnMs();
      return oldest === null ? 0 : Math.max(0, (Date.now() - oldest) / 1000);
    },
  );
  gauge(
    'engram_parked_threads',
    'Threads whose reflection failed for good: turns kept, no job, until a retry or their next turn',
    async () => (await threads.parked(0)).count,
  );
}
