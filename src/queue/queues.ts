import { Queue, type JobsOptions, type Telemetry } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Logger } from '../observability/logger.js';
import type { RedisHealth } from './connection.js';
import type { JobPayload, QueueName } from './schemas.js';

export type EngramQueue<Q extends QueueName> = Queue<JobPayload<Q>, unknown, string>;
export type EngramQueues = { [Q in QueueName]: EngramQueue<Q> };

export interface QueueSettings {
  prefix: string;
  /**
   * REFLECTION_ATTEMPTS and REFLECTION_BACKOFF_MS, or the SDK's options of those names. Required,
   * with no default here: BullMQ stores them on each job it adds, so a producer that fell back to
   * its own values would give its jobs another retry policy than the service's.
   */
  reflectionAttempts: number;
  reflectionBackoffMs: number;
  /** BullMQ's telemetry (bullmq-otel) when tracing is on: job options carry the trace context. */
  telemetry?: Telemetry | undefined;
}

/**
 * One typed map from queue name to payload, shared by producers and workers.
 * Failed jobs are kept (with their turns still buffered) until an operator retries or removes
 * them; completed ones are kept briefly for the dashboard.
 */
export function createQueues(
  connection: Redis,
  settings: QueueSettings,
  log: Logger,
  health?: RedisHealth,
): EngramQueues {
  return {
    reflection: createQueue('reflection', connection, settings, log, health),
    consolidation: createQueue('consolidation', connection, settings, log, health),
  };
}

/** One of the queues, for a process that uses only it (the SDK adds reflections and nothing else). */
export function createQueue<Q extends QueueName>(
  name: Q,
  connection: Redis,
  settings: QueueSettings,
  log: Logger,
  health?: RedisHealth,
): EngramQueue<Q> {
  const common: JobsOptions = {
    removeOnComplete: { age: 24 * 3600, count: 5_000 },
    removeOnFail: { age: 30 * 24 * 3600 },
  };
  const jobs: Record<QueueName, JobsOptions> = {
    reflection: {
      ...common,
      attempts: settings.reflectionAttempts,
      backoff: { type: 'exponential', delay: settings.reflectionBackoffMs, jitter: 0.5 },
    },
    consolidation: { ...common, attempts: 3, backoff: { type: 'exponential', delay: 10_000 } },
  };
  const queue: EngramQueue<Q> = new Queue(name, {
    connection,
    prefix: settings.prefix,
    defaultJobOptions: jobs[name],
    ...(settings.telemetry ? { telemetry: settings.telemetry } : {}),
  });
  // An unhandled 'error' event would crash the host when Redis restarts.
  queue.on('error', (err) =>
    health ? health.error(err, { queue: name }) : log.warn({ err, queue: name }, 'queue connection error'),
  );
  return queue;
}

/**
 * Adds the thread's one reflection job, unless it has one:
 * - no job yet: a delayed job is created (it debounces itself when it wakes, see thread-lease.ts);
 * - job delayed or waiting: nothing to do, it will read every buffered turn when it runs. It is
 *   not rescheduled: a delayed job may be waiting out a retry's backoff, which must hold;
 * - job active: `keepLastIfActive` stores a follow-up that BullMQ creates when the active one ends,
 *   so turns that arrive mid-reflection are never stranded (docs/prior-art.md: BullMQ dedup drops adds
 *   while a job is active).
 * The payload is only the thread id, so a deduplicated add loses nothing.
 */
export function scheduleReflection(queue: EngramQueue<'reflection'>, threadId: string, delayMs: number) {
  return queue.add(
    'reflect',
    { threadId },
    { delay: delayMs, deduplication: { id: threadId, keepLastIfActive: true } },
  );
}
