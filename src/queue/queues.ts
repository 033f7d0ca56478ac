import { Queue, type Job, type JobState, type JobsOptions, type Telemetry } from 'bullmq';
import type { RedisClient } from './connection.js';
import type { Logger } from '../observability/logger.js';
import type { RedisHealth } from './connection.js';
import type { JobPayload, QueueName } from './schemas.js';
import { reflectionQueueName, shardTags } from './shards.js';

export type EngramQueue<Q extends QueueName> = Queue<JobPayload<Q>, unknown, string>;
/** The reflection queue of each shard (shard n's at index n), and the consolidation queue. */
export interface EngramQueues {
  reflection: EngramQueue<'reflection'>[];
  consolidation: EngramQueue<'consolidation'>;
}

export interface QueueSettings {
  prefix: string;
  /** REDIS_SHARDS: one reflection queue per shard, under the shard's hash tag (shards.ts). */
  shards: number;
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
 * The queues, shared by producers and workers. The consolidation queue (one job per cron tick)
 * shares shard 0's tag: a queue must sit under a hash tag on a cluster, and it needs no spread.
 * Failed jobs are kept (with their turns still buffered) until an operator retries or removes
 * them; completed ones are kept briefly for the dashboard.
 */
export function createQueues(
  connection: RedisClient,
  settings: QueueSettings,
  log: Logger,
  health?: RedisHealth,
): EngramQueues {
  const [first] = shardTags(settings.prefix, settings.shards) as [string];
  return {
    reflection: createReflectionQueues(connection, settings, log, health),
    consolidation: createQueue('consolidation', 'consolidation', first, connection, settings, log, health),
  };
}

/** Every shard's reflection queue, for a process that uses only them (the SDK adds reflections only). */
export function createReflectionQueues(
  connection: RedisClient,
  settings: QueueSettings,
  log: Logger,
  health?: RedisHealth,
): EngramQueue<'reflection'>[] {
  return shardTags(settings.prefix, settings.shards).map((tag, n) =>
    createQueue('reflection', reflectionQueueName(n), tag, connection, settings, log, health),
  );
}

/** Every queue, for what shows or closes them all (Bull Board, the gauges, a shutdown). */
export function everyQueue(queues: EngramQueues): EngramQueue<QueueName>[] {
  return [...queues.reflection, queues.consolidation] as EngramQueue<QueueName>[];
}

/** One queue: `kind` says its payload and job options, `name` and `prefix` where it lives. */
function createQueue<Q extends QueueName>(
  kind: Q,
  name: string,
  prefix: string,
  connection: RedisClient,
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
    connection: connecting(connection),
    prefix,
    defaultJobOptions: jobs[kind],
    ...(settings.telemetry ? { telemetry: settings.telemetry } : {}),
  });
  // An unhandled 'error' event would crash the host when Redis restarts.
  queue.on('error', (err) =>
    health ? health.error(err, { queue: name }) : log.warn({ err, queue: name }, 'queue connection error'),
  );
  return queue;
}

/**
 * The connection, connecting: BullMQ must never be the one to connect it. A queue given a
 * connection ioredis has not started (`lazyConnect`, not yet used) connects it and awaits that
 * connect() call before any command, and keeps how it ended for the queue's life. An ioredis
 * Cluster whose ready check meets `cluster_state:fail` (a master's failover) reconnects by itself
 * but never settles the call: the first queue made on a lazy producer connection then waited for
 * ever, Bull Board's shard-0 queue among them (test/redis-failover-producers.test.ts). A single
 * Redis that is down rejects the call: that queue then failed every command with "Connection is
 * closed." after Redis was back. Connected here, the queues wait for the connection's `ready`
 * event, which comes whenever Redis is reachable again; the call's outcome is not needed (its
 * errors reach the connection's 'error' listeners, RedisHealth).
 */
function connecting(connection: RedisClient): RedisClient {
  if (connection.status === 'wait') connection.connect().catch(() => undefined);
  return connection;
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

/**
 * A thread's delayed job moved to `delayMs` from now: turns with a shorter window than the one
 * it was added with. Only a job waiting out its debounce: one waiting out a failed attempt's
 * backoff keeps it (BullMQ's own `reschedule` moves either), a running one is left alone, and one
 * that is gone is the next turn's to ask for. Two reads and a write, only on such turns.
 */
export async function rescheduleReflection(queue: EngramQueue<'reflection'>, threadId: string, delayMs: number) {
  const id = await queue.getDeduplicationJobId(threadId);
  const job = id ? await queue.getJob(id) : undefined;
  if (!job || job.attemptsMade > 0) return;
  // Not delayed (taken by a worker, or removed, since): nothing to move.
  await job.changeDelay(delayMs).catch((err: unknown) => {
    if (!(err instanceof Error && /is not in the delayed state|Missing key for job/.test(err.message))) throw err;
  });
}

/**
 * The ceiling sweeper's add: a job for a thread that has none, and nothing else. Plain
 * deduplication, without `keepLastIfActive`: an add that finds the thread's job (waiting, delayed
 * for its backoff, or active) is dropped. A thread past its ceiling with an active job is not
 * stranded (that job commits and resets the ceiling, or fails for good and parks the thread), so
 * a follow-up stored here would only run again, once the job ends, what that job just ran: a
 * failing reflection slower than maxWait ran its attempts twice and failed twice. Turns that
 * arrive mid-reflection get their follow-up from their producer's add (scheduleReflection).
 */
export function ensureReflection(queue: EngramQueue<'reflection'>, threadId: string) {
  return queue.add('reflect', { threadId }, { delay: 0, deduplication: { id: threadId } });
}

/** Jobs per state summed over queues (every shard's reflection queue, say). */
export async function countJobs(queues: readonly Queue[], ...states: JobState[]): Promise<Record<string, number>> {
  const total: Record<string, number> = Object.fromEntries(states.map((s) => [s, 0]));
  for (const counts of await Promise.all(queues.map((q) => q.getJobCounts(...states))))
    for (const [state, n] of Object.entries(counts)) total[state] = (total[state] ?? 0) + n;
  return total;
}

/** The jobs of these states in every one of the queues. */
export async function listJobs<Q extends QueueName>(
  queues: EngramQueue<Q>[],
  states: JobState[],
): Promise<Job<JobPayload<Q>, unknown, string>[]> {
  return (await Promise.all(queues.map((q) => q.getJobs(states)))).flat();
}
