import { Queue, type JobsOptions } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Logger } from '../log/logger.js';
import type { JobPayload, QueueName } from './schemas.js';

export type EngramQueue<Q extends QueueName> = Queue<JobPayload<Q>, unknown, string>;
export type EngramQueues = { [Q in QueueName]: EngramQueue<Q> };

export interface QueueSettings {
  prefix: string;
  reflectionAttempts: number;
  reflectionBackoffMs?: number;
}

/**
 * One typed map from queue name to payload, shared by producers and workers.
 * Failed jobs are kept (with their turns still buffered) until an operator retries or removes
 * them; completed ones are kept briefly for the dashboard.
 */
export function createQueues(connection: Redis, settings: QueueSettings, log: Logger): EngramQueues {
  const common: JobsOptions = {
    removeOnComplete: { age: 24 * 3600, count: 5_000 },
    removeOnFail: { age: 30 * 24 * 3600 },
  };
  const queues: EngramQueues = {
    reflection: new Queue('reflection', {
      connection,
      prefix: settings.prefix,
      defaultJobOptions: {
        ...common,
        attempts: settings.reflectionAttempts,
        backoff: { type: 'exponential', delay: settings.reflectionBackoffMs ?? 5_000, jitter: 0.5 },
      },
    }),
    consolidation: new Queue('consolidation', {
      connection,
      prefix: settings.prefix,
      defaultJobOptions: { ...common, attempts: 3, backoff: { type: 'exponential', delay: 10_000 } },
    }),
  };
  // An unhandled 'error' event would crash the host when Redis restarts.
  for (const q of Object.values(queues)) q.on('error', (err) => log.warn({ err, queue: q.name }, 'queue connection error'));
  return queues;
}

/**
 * Adds the thread's one reflection job, unless it has one:
 * - no job yet: a delayed job is created (it debounces itself when it wakes, see thread-lease.ts);
 * - job delayed or waiting: nothing to do, it will read every buffered turn when it runs. It is
 *   not rescheduled: a delayed job may be waiting out a retry's backoff, which must hold;
 * - job active: `keepLastIfActive` stores a follow-up that BullMQ creates when the active one ends,
 *   so turns that arrive mid-reflection are never stranded (LESSONS: BullMQ dedup drops adds
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
