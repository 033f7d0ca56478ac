import type { Redis } from 'ioredis';
import type { ThreadBuffer } from './buffer.js';
import type { EngramQueue } from './queues.js';
import { contextSchema } from './schemas.js';

/**
 * The Redis half of an erase (the other half is the store's, src/store/erase.ts): which threads
 * belong to a context, and deleting their buffered turns, message ids, state and jobs.
 *
 * Threads are found by scanning their state (each keeps the context its turns came with)
 * rather than through an index kept on the hot path: an erase is a rare operator's act, and an
 * index would cost every enqueue a write and every thread memory. A scan of 100,000 threads is
 * a few hundred round trips of pipelined reads.
 */
export async function threadsOfContext(
  redis: Redis,
  buffer: ThreadBuffer,
  prefix: string,
  match: Record<string, string>,
): Promise<string[]> {
  const head = `${prefix}:thread:`;
  const found: string[] = [];
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${head}*:meta`, 'COUNT', 1_000);
    cursor = next;
    if (keys.length === 0) continue;
    const pipeline = redis.pipeline();
    for (const key of keys) pipeline.hget(key, 'ctx');
    const contexts = (await pipeline.exec()) ?? [];
    keys.forEach((key, i) => {
      const threadId = key.slice(head.length, -':meta'.length);
      // A thread id may hold ':'; its keys are exactly this one's only if they round-trip.
      if (buffer.keys(threadId).meta !== key) return;
      const raw = contexts[i]?.[1];
      if (typeof raw !== 'string') return;
      const ctx = contextSchema.safeParse(JSON.parse(raw));
      if (ctx.success && Object.entries(match).every(([k, v]) => ctx.data[k] === v)) found.push(threadId);
    });
  } while (cursor !== '0');
  return found.sort();
}

/**
 * Deletes the threads' turns, message ids and state, takes them off the ceilings set, and
 * removes their jobs in every state a job can be removed from (an active one is running: its
 * commit is refused by the store's erase epoch, and it ends finding nothing). The lease is left
 * to expire: deleting it would let a second reflection start beside the running one.
 */
export async function eraseThreads(
  redis: Redis,
  buffer: ThreadBuffer,
  queue: EngramQueue<'reflection'>,
  threadIds: string[],
): Promise<{ jobs: number }> {
  if (threadIds.length === 0) return { jobs: 0 };
  const multi = redis.multi();
  for (const id of threadIds) {
    const k = buffer.keys(id);
    multi.del(k.turns, k.ids, k.meta);
    multi.zrem(k.ceilings, id);
  }
  await multi.exec();
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
  return { jobs };
}
