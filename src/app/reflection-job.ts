import { randomUUID } from 'node:crypto';
import { DelayedError, UnrecoverableError, type Job } from 'bullmq';
import { PermanentError } from '../errors.js';
import type { Logger } from '../observability/logger.js';
import { reflectThread, type ReflectDeps, type ReflectOutcome } from '../memory/reflect.js';
import { jobPayloads, type JobPayload } from '../queue/schemas.js';
import type { LeaseState, ThreadLease } from '../queue/thread-lease.js';
import type { Metrics } from '../observability/metrics.js';

/** A job's result: a reflection's outcome, or why it ended without one. */
export type ReflectionResult = ReflectOutcome | { status: 'superseded'; threadId: string };

/** The thread got new turns and its policy is `rollback`: give way to one reflection of all turns. */
class Superseded extends Error {
  override name = 'Superseded';
}
/** Another process took the thread's lease (ours expired): committing now could race it. */
class LeaseLost extends Error {
  override name = 'LeaseLost';
}

export const SHUTDOWN = 'shutdown';

export interface ReflectionJobDeps {
  reflect: ReflectDeps;
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
    const log = deps.log.child({ jobId: job.id, threadId });
    const owner = `${job.id}:${randomUUID()}`;

    const start = await deps.lease.acquire(threadId, owner);
    if (start.status === 'not-quiet') {
      // Turns kept coming since this job was scheduled: come back when the thread may be quiet.
      // This is the debounce: one job per burst, re-delayed instead of re-added on every turn.
      deps.metrics.reflections.inc({ status: 'not-quiet' });
      await job.moveToDelayed(Date.now() + start.waitMs, token);
      throw new DelayedError();
    }
    if (start.status === 'busy') {
      // Another reflection of this thread runs (a stalled re-run, an operator's retry): wait for it.
      log.debug('thread busy, reflection deferred');
      deps.metrics.reflections.inc({ status: 'deferred' });
      await job.moveToDelayed(Date.now() + 1_000, token);
      throw new DelayedError();
    }

    const controller = new AbortController();
    const forward = () => controller.abort(signal?.reason);
    signal?.addEventListener('abort', forward, { once: true });
    // A shutdown that came while the lease was being taken has fired already.
    if (signal?.aborted) forward();
    const problem = (s: LeaseState): Error | null => {
      if (!s.held) return new LeaseLost(`lease of thread ${threadId} lost`);
      // A thread past its maxWait commits anyway: otherwise a never-quiet thread under
      // `rollback` would abort forever (invariant 5).
      if (s.policy === 'rollback' && s.gen !== start.gen && !s.overdue)
        return new Superseded(`thread ${threadId} got new turns`);
      return null;
    };
    const heartbeat = setInterval(
      () => {
        deps.lease.renew(threadId, owner).then(
          (s) => {
            const p = problem(s);
            if (p && !controller.signal.aborted) controller.abort(p);
          },
          (err: unknown) => log.warn({ err }, 'lease renewal failed'),
        );
      },
      Math.max(100, Math.floor(deps.lease.leaseMs / 3)),
    );

    const end = deps.metrics.reflectionSeconds.startTimer();
    try {
      const outcome = await reflectThread({ ...deps.reflect, log }, threadId, {
        actor: `reflection:${job.id}`,
        signal: controller.signal,
        beforeCommit: async () => {
          const p = problem(await deps.lease.renew(threadId, owner));
          if (p) throw p;
        },
      });
      record(deps.metrics, outcome);
      return outcome;
    } catch (err) {
      const reason: unknown = controller.signal.aborted ? controller.signal.reason : err;
      if (reason instanceof Superseded || err instanceof Superseded) {
        // Nothing was committed; the follow-up job BullMQ keeps for this thread sees every turn.
        log.info('reflection superseded by new turns (rollback policy)');
        deps.metrics.reflections.inc({ status: 'superseded' });
        return { status: 'superseded', threadId };
      }
      if (reason === SHUTDOWN) {
        // Handed back untouched, without spending an attempt: another worker takes it at once.
        log.info('reflection aborted by shutdown, job handed back');
        deps.metrics.reflections.inc({ status: 'handed-back' });
        await job.moveToDelayed(Date.now(), token);
        throw new DelayedError();
      }
      deps.metrics.reflections.inc({ status: 'error' });
      // Retrying a permanent failure only burns attempts; BullMQ fails it at once.
      if (err instanceof PermanentError) throw Object.assign(new UnrecoverableError(err.message), { cause: err });
      throw reason instanceof Error ? reason : err;
    } finally {
      end();
      clearInterval(heartbeat);
      signal?.removeEventListener('abort', forward);
      await deps.lease.release(threadId, owner).catch((err: unknown) => log.warn({ err }, 'lease release failed'));
    }
  };
}

function record(metrics: Metrics, outcome: ReflectOutcome) {
  metrics.reflections.inc({ status: outcome.status });
  metrics.memoryWrites.inc({ op: 'insert' }, outcome.inserted);
  metrics.memoryWrites.inc({ op: 'update' }, outcome.updated);
  metrics.memoryWrites.inc({ op: 'delete' }, outcome.deleted);
  metrics.modelTokens.inc({ type: 'prompt' }, outcome.usage.promptTokens);
  metrics.modelTokens.inc({ type: 'completion' }, outcome.usage.completionTokens);
}
