import { randomUUID } from 'node:crypto';
import { DelayedError, UnrecoverableError, type Job } from 'bullmq';
import { coerceError, PermanentError } from '../errors.js';
import type { Logger } from '../observability/logger.js';
import { reflectThread, type ReflectDeps, type ReflectOutcome } from '../memory/reflect.js';
import { jobPayloads, type JobPayload } from '../queue/schemas.js';
import type { ThreadLease } from '../queue/thread-lease.js';
import type { Metrics } from '../observability/metrics.js';
import type { DependencyOutage } from './dependency-outage.js';
import { Superseded, withThreadLease } from './with-thread-lease.js';

/** A job's result: a reflection's outcome, or why it ended without one. */
export type ReflectionResult = ReflectOutcome | { status: 'superseded'; threadId: string };

export const SHUTDOWN = 'shutdown';

export interface ReflectionJobDeps {
  reflect: ReflectDeps;
  /** Holds the process's reflections while a dependency is out of reach (dependency-outage.ts). */
  outage?: DependencyOutage | undefined;
  lease: ThreadLease;
  metrics: Metrics;
  log: Logger;
}

/**
 * The processor of one reflection job: take the thread's lease, keep it alive, reflect, and
 * check right before the commit that the lease is still ours and (under `rollback`) that no
 * turn arrived since the start. It declares BullMQ's third `signal` parameter, so cancellation
 * (shutdown) reaches every model request.
 */
export function createReflectionProcessor(deps: ReflectionJobDeps) {
  return async (
    job: Job<JobPayload<'reflection'>>,
    token?: string,
    signal?: AbortSignal,
  ): Promise<ReflectionResult> => {
    const payload = jobPayloads.reflection.safeParse(job.data);
    if (!payload.success) throw new UnrecoverableError(`invalid reflection payload: ${payload.error.message}`);
    const { threadId } = payload.data;
    // The reflection adds the thread to its own lines (reflect.ts); given it twice, pino writes
    // the key twice, which JSON log shippers refuse or cut.
    const jobLog = deps.log.child({ jobId: job.id });
    const log = jobLog.child({ threadId });
    const owner = `${job.id}:${randomUUID()}`;

    const start = await deps.lease.acquire(threadId, owner);
    if (start.status !== 'held') return postpone(job, token, start, deps, log);
    const end = deps.metrics.reflectionSeconds.startTimer();
    try {
      const outcome = await withThreadLease(deps.lease, { threadId, owner, start, signal, log }, (lease) =>
        reflectThread({ ...deps.reflect, log: jobLog }, threadId, {
          actor: reflectionActor(job),
          signal: lease.signal,
          beforeCommit: lease.check,
        }),
      );
      record(deps.metrics, outcome);
      return outcome;
    } catch (err) {
      return failed(err, job, token, deps, log);
    } finally {
      end();
    }
  };
}

/**
 * Not now: turns kept coming since this job was scheduled (`not-quiet`: come back when the
 * thread may be quiet; this is the debounce, one job per burst, re-delayed instead of re-added on
 * every turn), or another reflection of this thread runs (`busy`: a stalled re-run, an
 * operator's retry; wait for it).
 */
async function postpone(
  job: Job,
  token: string | undefined,
  start: { status: 'held' | 'busy' | 'not-quiet'; waitMs: number },
  deps: ReflectionJobDeps,
  log: Logger,
): Promise<never> {
  if (start.status === 'busy') log.debug('thread busy, reflection deferred');
  deps.metrics.reflections.inc({ status: start.status === 'busy' ? 'deferred' : 'not-quiet' });
  await job.moveToDelayed(Date.now() + (start.status === 'busy' ? 1_000 : start.waitMs), token);
  throw new DelayedError();
}

/** What a failed or aborted reflection becomes: a superseded result, a hand-back, or the job's failure. */
async function failed(
  err: unknown,
  job: Job<JobPayload<'reflection'>>,
  token: string | undefined,
  deps: ReflectionJobDeps,
  log: Logger,
): Promise<ReflectionResult> {
  if (err instanceof Superseded) {
    // Nothing was committed; the follow-up job BullMQ keeps for this thread sees every turn.
    log.info('reflection superseded by new turns (rollback policy)');
    deps.metrics.reflections.inc({ status: 'superseded' });
    return { status: 'superseded', threadId: job.data.threadId };
  }
  if (err === SHUTDOWN) {
    // Handed back untouched, without spending an attempt: another worker takes it at once.
    log.info('reflection aborted by shutdown, job handed back');
    deps.metrics.reflections.inc({ status: 'handed-back' });
    await job.moveToDelayed(Date.now(), token);
    throw new DelayedError();
  }
  if (await deps.outage?.holds(err)) {
    // Handed back as at shutdown: an outage is not the job's failure, and must not park it.
    log.debug({ err }, 'a dependency is unreachable: job handed back');
    deps.metrics.reflections.inc({ status: 'handed-back' });
    await job.moveToDelayed(Date.now() + 1_000, token);
    throw new DelayedError();
  }
  deps.metrics.reflections.inc({ status: 'error' });
  // Retrying a permanent failure only burns attempts; BullMQ fails it at once.
  if (err instanceof PermanentError) throw Object.assign(new UnrecoverableError(err.message), { cause: err });
  throw coerceError(err);
}

function record(metrics: Metrics, outcome: ReflectOutcome) {
  metrics.reflections.inc({ status: outcome.status });
  metrics.memoryWrites.inc({ op: 'insert' }, outcome.inserted);
  metrics.memoryWrites.inc({ op: 'update' }, outcome.updated);
  metrics.memoryWrites.inc({ op: 'delete' }, outcome.deleted);
  metrics.memoryWrites.inc({ op: 'invalidate' }, outcome.invalidated);
  metrics.modelTokens.inc({ type: 'prompt' }, outcome.usage.promptTokens);
  metrics.modelTokens.inc({ type: 'completion' }, outcome.usage.completionTokens);
  for (const [how, n] of Object.entries(outcome.narrowed)) if (n) metrics.promptsNarrowed.inc({ how }, n);
}

/**
 * Who a reflection's changes are by, in history and usage: `reflection:<job id>@<job's creation
 * time, ms>`, the queue naming the shard (`reflection-<n>:...` after shard 0). The job id alone
 * is BullMQ's counter in Redis, which starts again at 1 when Redis comes back without its data:
 * "undo everything reflection:1 changed" then undid another user's reflection as well. A job
 * keeps its creation time through its retries, so one job is still one actor.
 */
export function reflectionActor(job: { queueName: string; id?: string | undefined; timestamp: number }): string {
  return `${job.queueName}:${job.id}@${job.timestamp}`;
}
