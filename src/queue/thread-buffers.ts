import type { RedisClient } from './connection.js';
import { ThreadBuffer, type BufferOptions } from './buffer.js';
import { shardOf } from './shards.js';

/**
 * The thread buffers of every shard, routed by thread id: what reflections, leases, the eraser
 * and the gauges call with a thread id, or for all threads. The sweepers and the producer take a
 * shard's own buffer (`at`), so that a thread's append and its job land in one shard.
 */
export class ThreadBuffers {
  readonly all: ThreadBuffer[];

  constructor(redis: RedisClient, tags: string[], options: BufferOptions) {
    this.all = tags.map((tag) => new ThreadBuffer(redis, tag, options));
  }

  get count(): number {
    return this.all.length;
  }

  /** The shard of a thread: its CRC-32 mod the number of shards. */
  shardOf(threadId: string): number {
    return shardOf(threadId, this.all.length);
  }

  at(shard: number): ThreadBuffer {
    return this.all[shard] as ThreadBuffer;
  }

  of(threadId: string): ThreadBuffer {
    return this.at(this.shardOf(threadId));
  }

  keys(threadId: string) {
    return this.of(threadId).keys(threadId);
  }

  read(...args: Parameters<ThreadBuffer['read']>) {
    return this.of(args[0]).read(...args);
  }

  trim(...args: Parameters<ThreadBuffer['trim']>) {
    return this.of(args[0]).trim(...args);
  }

  park(threadId: string, nowMs?: number) {
    return this.of(threadId).park(threadId, nowMs);
  }

  clearScheduled(threadId: string) {
    return this.of(threadId).clearScheduled(threadId);
  }

  /** Threads with turns waiting for a reflection, over every shard. */
  async pendingThreads(): Promise<number> {
    const counts = await Promise.all(this.all.map((b) => b.pendingThreads()));
    return counts.reduce((a, b) => a + b, 0);
  }

  /** The oldest pending turn of every shard's sample. */
  async oldestPendingTurnMs(sample = 100): Promise<number | null> {
    const each = await Promise.all(this.all.map((b) => b.oldestPendingTurnMs(sample)));
    const found = each.filter((ms): ms is number => ms !== null);
    return found.length ? Math.min(...found) : null;
  }

  /** Parked threads of every shard, longest parked first, and how many there are. */
  async parked(limit: number): Promise<{ count: number; threads: { threadId: string; parkedAt: number }[] }> {
    const each = await Promise.all(this.all.map((b) => b.parked(limit)));
    const threads = each
      .flatMap((p) => p.threads)
      .sort((a, b) => a.parkedAt - b.parkedAt)
      .slice(0, limit);
    return { count: each.reduce((n, p) => n + p.count, 0), threads };
  }
}
