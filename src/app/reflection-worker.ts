import { UnrecoverableError, Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import { PermanentError } from '../errors.js';
import type { Logger } from '../log/logger.js';
import { reflectThread, type ReflectDeps, type ReflectOutcome } from '../memory/reflect.js';
import type { ThreadBuffer } from '../queue/buffer.js';
import { scheduleReflection, type EngramQueue } from '../queue/queues.js';
import { jobPayloads, type JobPayload } from '../queue/schemas.js';
import type { Metrics } from './metrics.js';

export interface ReflectionWorkerOptions {
  connection: Redis;
  prefix: string;
  concurrency: number;
  queue: EngramQueue<'reflection'>;
  buffer: ThreadBuffer;
  reflect: ReflectDeps;
  metrics: Metrics;
  log: Logger;
  /** How often to check the maxWait ceilings (ms). */
  ceilingIntervalMs?: number;
}

/**
 * The BullMQ worker that runs reflections, plus the maxWait ceiling sweeper.
 * The processor declares the third `signal` parameter so that BullMQ passes an AbortSignal,
 * which reaches every model request.
 */
export function startReflectionWorker(opts: ReflectionWorkerOptions) {
  const log = opts.log.child({ component: 'reflection-worker', queue: 'reflection' });
  const worker = new Worker<JobPayload<'reflection'>, ReflectOutcome, string>(
    'reflection',
    async (job, _token, signal) => {
      const payload = jobPayloads.reflection.safeParse(job.data);
      if (!payload.success) throw new UnrecoverableError(`invalid reflection payload: ${payload.error.message}`);
      const end = opts.metrics.reflectionSeconds.startTimer();
      try {
        const outcome = await reflectThread(
          { ...opts.reflect, log: log.child({ jobId: job.id }) },
          payload.data.threadId,
          { actor: `reflection:${job.id}`, signal },
        );
        opts.metrics.reflections.inc({ status: outcome.status });
        opts.metrics.memoryWrites.inc({ op: 'insert' }, outcome.inserted);
        opts.metrics.memoryWrites.inc({ op: 'update' }, outcome.updated);
        opts.metrics.memoryWrites.inc({ op: 'delete' }, outcome.deleted);
        opts.metrics.modelTokens.inc({ type: 'prompt' }, outcome.usage.promptTokens);
        opts.metrics.modelTokens.inc({ type: 'completion' }, outcome.usage.completionTokens);
        // A backlog beyond one reflection's batch: a follow-up, created when this job ends.
        if (outcome.backlog) await scheduleReflection(opts.queue, payload.data.threadId, 0);
        return outcome;
      } catch (err) {
        opts.metrics.reflections.inc({ status: 'error' });
        // Retrying a permanent failure only burns attempts; BullMQ fails it at once.
        if (err instanceof PermanentError) throw Object.assign(new UnrecoverableError(err.message), { cause: err });
        throw err;
      } finally {
        end();
      }
    },
    { connection: opts.connection, prefix: opts.prefix, concurrency: opts.concurrency, autorun: true },
  );
  worker.on('failed', (job, err) => {
    if (!job) return;
    const final = err instanceof UnrecoverableError || job.attemptsMade >= (job.opts.attempts ?? 1);
    log.warn({ jobId: job.id, threadId: job.data.threadId, attempts: job.attemptsMade, final, err }, 'reflection failed');
    if (final) void opts.buffer.clearCeiling(job.data.threadId).catch((e: unknown) => log.warn({ err: e }, 'could not clear ceiling'));
  });
  worker.on('error', (err) => log.error({ err }, 'reflection worker error'));

  const sweeper = startCeilingSweeper(opts, log);
  return {
    worker,
    async close() {
      sweeper.stop();
      await worker.close();
    },
  };
}

/**
 * maxWait (invariant 5): a thread that never goes quiet keeps pushing its delayed job back, so
 * every worker checks the fleet-wide ceilings and pulls due jobs forward (a dedup add with delay
 * 0 reschedules the delayed job to now). It also re-creates a job for turns whose schedule was
 * lost (the producer died between its two commands): no accepted turn is stranded.
 */
function startCeilingSweeper(opts: ReflectionWorkerOptions, log: Logger) {
  const interval = opts.ceilingIntervalMs ?? 1_000;
  let running = false;
  const tick = async () => {
    if (running) return;
    running = true;
    try {
      const now = Date.now();
      for (const threadId of await opts.buffer.dueCeilings(now, 100)) {
        await scheduleReflection(opts.queue, threadId, 0);
        // Until the reflection commits and resets it, check again only after a while.
        await opts.buffer.postponeCeiling(threadId, now + Math.max(interval * 30, 30_000));
        log.debug({ threadId }, 'maxWait reached, reflection pulled forward');
      }
    } catch (err) {
      log.warn({ err }, 'ceiling sweep failed');
    } finally {
      running = false;
    }
  };
  const timer = setInterval(() => void tick(), interval);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}
