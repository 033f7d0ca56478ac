import type { Job } from 'bullmq';
import type { RedisClient } from '../queue/connection.js';
import { RetryableError } from '../errors.js';

/**
 * BullMQ's own limit on stalls, kept only as a backstop: stalls are counted into the job's
 * attempts below, which fail a job long before this. Only a job whose worker dies before the
 * processor's first line, a thousand times, reaches it.
 */
export const STALL_BACKSTOP = 1_000;

/** The job hash field (beside BullMQ's own; removed with the job) holding the stalls counted so far. */
const COUNTED_FIELD = 'engramStallsCounted';

/** A run of this job stalled (its worker died or lost its lock): that run was a failed attempt. */
export class StalledRun extends RetryableError {
  override name = 'StalledRun';
}

/**
 * Counts a job's stalls against its attempts, with backoff, like any other failure. BullMQ
 * moves a stalled job back to wait and counts the stall in `stalledCounter` only: with its
 * `maxStalledCount` (2 here before) a third stall failed the job unrun, whatever its attempts,
 * and a worker killed by another job's reflection took every job it ran with it. So the first
 * thing a run does is compare the job's stalls with those already counted (a field of the job's
 * own hash): a stall not counted yet is recorded and reported as this run's failure, which
 * BullMQ turns into a retry after the job's backoff, or, with no attempt left, the job's
 * failure (its thread then parks, visible). A job that never stalled pays nothing: the counter
 * comes with the job.
 */
export async function countStalls(job: Job, client: RedisClient, jobKey: string): Promise<void> {
  if (!job.stalledCounter) return;
  const counted = Number((await client.hget(jobKey, COUNTED_FIELD)) ?? 0);
  if (job.stalledCounter <= counted) return;
  await client.hset(jobKey, COUNTED_FIELD, job.stalledCounter);
  const message = `its previous run stalled (the worker died or lost its lock while running it): counted as a failed attempt; ${job.stalledCounter} stall(s) so far`;
  await job.log(message).catch(() => undefined);
  throw new StalledRun(message);
}
