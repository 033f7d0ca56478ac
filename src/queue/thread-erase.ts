import type { RedisClient } from './connection.js';
import { scanPages } from './scan.js';
import type { ThreadBuffers } from './thread-buffers.js';
import type { EngramQueue } from './queues.js';
import { contextSchema } from './schemas.js';

/**
 * The Redis half of an erase (the other half is the store's, src/store/erase.ts): which threads
 * belong to a context, and deleting their buffered turns, message ids, state and jobs.
 *
 * Threads are found by scanning their state (each keeps the context its turns came with)
 * rather than through an index kept on the hot path: an erase is a rare operator's act, and an
 * index would cost every enqueue a write and every thread memory. A scan of 100,000 threads is
 * a few hundred round trips of pipelined reads: each shard's keys on every master of a cluster
 * (scan.ts), each page read on the node that holds it.
 */
export async function threadsOfContext(
  redis: RedisClient,
  buffers: ThreadBuffers,
  match: Record<string, string>,
): Promise<string[]> {
  const found: string[] = [];
  for (const buffer of buffers.all) {
    const head = `${buffer.prefix}:thread:`;
    await scanPages(redis, `${head}*:meta`, async (keys, node) => {
      const pipeline = node.pipeline();
      for (const key of keys) pipeline.hget(key, 'ctx');
      const contexts = (await pipeline.exec()) ?? [];
      keys.forEach((key, i) => {
        const threadId = key.slice(head.length, -':meta'.length);
        // A thread id may hold ':'; its keys are exactly this one's only if they round-trip (and
        // the thread's shard is this one).
        if (buffers.keys(threadId).meta !== key) return;
        const raw = contexts[i]?.[1];
        if (typeof raw !== 'string') return;
        const ctx = contextSchema.safeParse(JSON.parse(raw));
        if (ctx.success && Object.entries(match).every(([k, v]) => ctx.data[k] === v)) found.push(threadId);
      });
    });
  }
  return found.sort();
}

/**
 * Deletes the threads' turns, message ids and state, takes them off their shard's ceilings and
 * parked sets, and removes their jobs in every state a job can be removed from (an active one is running: its
 * commit is refused by the store's erase epoch, and it ends finding nothing). One MULTI per
 * shard: a shard's keys share a hash tag, so each is one slot on a cluster. The lease is left to
 * expire: deleting it would let a second reflection start beside the running one.
 */
export async function eraseThreads(
  redis: RedisClient,
  buffers: ThreadBuffers,
  queues: EngramQueue<'reflection'>[],
  threadIds: string[],
): Promise<{ jobs: number }> {
  let jobs = 0;
  for (const [shard, ids] of byShard(buffers, threadIds)) {
    const multi = redis.multi();
    for (const id of ids) {
      const k = buffers.keys(id);
      multi.del(k.turns, k.ids, k.meta);
      multi.zrem(k.ceilings, id);
      // A parked thread erased stays parked for ever otherwise: nothing reflects it again (its
      // turns are gone), and `engram_parked_threads`, whose alert is "above 0", never comes down.
      multi.zrem(k.parked, id);
    }
    await multi.exec();
    jobs += await removeJobs(queues[shard] as EngramQueue<'reflection'>, ids);
  }
  return { jobs };
}

function byShard(buffers: ThreadBuffers, threadIds: string[]): Map<number, string[]> {
  const shards = new Map<number, string[]>();
  for (const id of threadIds) {
    const shard = buffers.shardOf(id);
    shards.set(shard, [...(shards.get(shard) ?? []), id]);
  }
  return shards;
}

/** Removes the threads' jobs from their shard's queue; how many were removed. */
async function removeJobs(queue: EngramQueue<'reflection'>, threadIds: string[]): Promise<number> {
  const wanted = new Set(threadIds);
  // Found first, removed after: removing while paging would shift the pages under the scan.
  const found = [];
  for (const state of ['waiting', 'delayed', 'prioritized', 'failed', 'completed'] as const) {
    for (let start = 0; ; start += 500) {
      const page = await queue.getJobs([state], start, start + 499, true);
      found.push(...page.filter((job) => wanted.has(job.data.threadId)));
      if (page.length < 500) break;
    }
  }
  let jobs = 0;
  for (const job of found) {
    await job.remove().then(
      () => jobs++,
      () => undefined, // taken by a worker meanwhile: as an active job, it finds nothing.
    );
  }
  for (const id of threadIds) await queue.removeDeduplicationKey(id);
  return jobs;
}
