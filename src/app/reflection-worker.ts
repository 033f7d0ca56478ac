import { trace } from '@opentelemetry/api';
import { DelayedError, UnrecoverableError, Worker, type Job, type Telemetry } from 'bullmq';
import type { RedisClient } from '../queue/connection.js';
import type { Logger } from '../observability/logger.js';
import type { ReflectDeps } from '../memory/reflect.js';
import type { ThreadBuffer } from '../queue/buffer.js';
import type { RedisHealth } from '../queue/connection.js';
import { scheduleReflection, type EngramQueue } from '../queue/queues.js';
import type { JobPayload } from '../queue/schemas.js';
import type { ThreadLease } from '../queue/thread-lease.js';
import { startCeilingSweeper } from './ceiling-sweeper.js';
import type { Metrics } from '../observability/metrics.js';
import type { DependencyOutage } from './dependency-outage.js';
import { createReflectionProcessor, SHUTDOWN, type ReflectionResult } from './reflection-job.js';
import { countStalls, STALL_BACKSTOP, StalledRun } from './stall-accounting.js';

export interface ReflectionWorkerOptions {
  connection: RedisClient;
  concurrency: number;
  /** BullMQ job lock; a SIGKILLed worker's job is recovered as stalled after about this long. */
  lockMs: number;
  /** The shard's queue: the worker takes its name and prefix (the shard's hash tag). */
  queue: EngramQueue<'reflection'>;
  /** The shard's buffer, whose ceilings the sweeper checks. */
  buffer: ThreadBuffer;
  lease: ThreadLease;
  reflect: ReflectDeps;
  metrics: Metrics;
  log: Logger;
  health: RedisHealth;
  /** BullMQ's telemetry when tracing is on: each run is a span in the trace of the turn that added the job. */
  telemetry?: Telemetry | undefined;
  /** Shared by the process's shard workers: holds them while a dependency is out of reach. */
  outage?: DependencyOutage | undefined;
  /** How often to check the maxWait ceilings (ms). */
  ceilingIntervalMs?: number;
}

/** The BullMQ worker that runs one shard's reflections, plus the shard's maxWait ceiling sweeper. */
export function startReflectionWorker(opts: ReflectionWorkerOptions) {
  const log = opts.log.child({ component: 'reflection-worker', queue: opts.queue.name });
  const processor = createReflectionProcessor({
    reflect: opts.reflect,
    lease: opts.lease,
    metrics: opts.metrics,
    log,
    outage: opts.outage,
  });
  const worker = new Worker<JobPayload<'reflection'>, ReflectionResult, string>(
    opts.queue.name,
    async (job, token, signal) => {
      let result: ReflectionResult;
      try {
        await countStalls(job, opts.connection, opts.queue.toKey(job.id ?? ''));
        result = await processor(job, token, signal);
      } catch (err) {
        // Parked while the job is still active, so that its ceiling is gone before the job's
        // deduplication ends: the sweeper then cannot add a job that would run it all again.
        if (isFinal(job, err)) await park(job, opts, log);
        throw err;
      }
      // On BullMQ's span of this run, when tracing is on (no span otherwise: a no-op).
      trace
        .getActiveSpan()
        ?.setAttributes({ 'engram.thread.id': job.data.threadId, 'engram.reflection.status': result.status });
      // A backlog beyond one reflection's batch: a follow-up, which BullMQ creates when this ends.
      if ('backlog' in result && result.backlog) await scheduleReflection(opts.queue, job.data.threadId, 0);
      return result;
    },
    {
      connection: opts.connection,
      prefix: opts.queue.opts.prefix,
      concurrency: opts.concurrency,
      lockDuration: opts.lockMs,
      stalledInterval: opts.lockMs,
      // Stalls count against the job's attempts (stall-accounting.ts), not against this.
      maxStalledCount: STALL_BACKSTOP,
      ...(opts.telemetry ? { telemetry: opts.telemetry } : {}),
    },
  );
  worker.on('failed', (job, err) => job && onFailed(job, err, opts, log));
  worker.on('error', (err) => opts.health.error(err, { component: 'reflection-worker', queue: opts.queue.name }));

  const sweeper = startCeilingSweeper({
    buffer: opts.buffer,
    queue: opts.queue,
    intervalMs: opts.ceilingIntervalMs ?? 1_000,
    log,
    health: opts.health,
  });
  let closing: Promise<void> | null = null;
  return {
    worker,
    /**
     * Stops taking jobs and lets active reflections finish for up to `graceMs`; then aborts them
     * (their model requests too) and hands their jobs back without spending an attempt.
     */
    close(graceMs: number): Promise<void> {
      closing ??= (async () => {
        sweeper.stop();
        const timer = setTimeout(() => {
          log.warn({ graceMs }, 'grace period over: aborting active reflections');
          worker.cancelAllJobs(SHUTDOWN);
        }, graceMs);
        try {
          await worker.close();
        } finally {
          clearTimeout(timer);
        }
      })();
      return closing;
    },
  };
}

type ReflectionJob = Job<JobPayload<'reflection'>, ReflectionResult, string>;

/** Jobs whose thread their run parked already (see the processor): onFailed does not park them again. */
const parkedByRun = new WeakSet<ReflectionJob>();

/**
 * Whether this run's failure is the job's last: BullMQ fails it for good rather than retrying
 * (a postponement or hand-back, a DelayedError, is no failure at all). attemptsMade counts the
 * runs that failed before this one.
 */
function isFinal(job: ReflectionJob, err: unknown): boolean {
  if (err instanceof DelayedError) return false;
  return err instanceof UnrecoverableError || job.attemptsMade + 1 >= (job.opts.attempts ?? 1);
}

/**
 * A job failed for good parks its thread: its turns stay buffered for an operator's retry or the
 * thread's next turn, and the sweeper stops re-creating the job every maxWait.
 */
async function park(job: ReflectionJob, opts: ReflectionWorkerOptions, log: Logger): Promise<void> {
  try {
    const parked = await opts.buffer.park(job.data.threadId);
    parkedByRun.add(job);
    if (!parked)
      log.info({ jobId: job.id, threadId: job.data.threadId }, 'thread not parked: no turns buffered (erased)');
  } catch (err) {
    log.warn({ err, jobId: job.id, threadId: job.data.threadId }, 'could not park thread');
  }
}

/**
 * Counts a stalled run and logs the failure. Parks the thread of a job failed for good that its
 * run did not park (BullMQ failing it without a run).
 */
function onFailed(job: ReflectionJob, err: Error, opts: ReflectionWorkerOptions, log: Logger): void {
  const final = err instanceof UnrecoverableError || job.attemptsMade >= (job.opts.attempts ?? 1);
  if (err instanceof StalledRun) opts.metrics.reflections.inc({ status: 'stalled' });
  const fields = { jobId: job.id, threadId: job.data.threadId, attempts: job.attemptsMade, final, err };
  // The last failure leaves the thread parked and its turns unreflected: an error, not a warning.
  if (final) log.error(fields, 'reflection failed');
  else log.warn(fields, 'reflection failed');
  if (final && !parkedByRun.has(job)) void park(job, opts, log);
}
