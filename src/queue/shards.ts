import { crc32 } from 'node:zlib';
import { spreadTags } from '../core/hash-tags.js';

/**
 * Where a thread's keys and its reflection queue live: one of REDIS_SHARDS (K) shards. A BullMQ
 * queue keeps all its keys in one hash slot, so one queue cannot spread over a Redis Cluster;
 * K queues under K hash tags can (docs/decisions.md, "Shards under hash tags").
 *
 * Shard n's keys (a thread's turns, ids, meta and lock, the shard's ceilings and parked sets, its
 * BullMQ queue) all start with its tag, so the append script touches one slot and the hot path
 * stays one round trip. With K = 1 the one shard is the prefix itself: every key and queue name
 * is what it was before shards existed, so a deployment that never sets REDIS_SHARDS moves
 * nothing.
 */

/** A thread's shard: CRC-32 of its id mod K (0 without hashing when there is one shard). */
export function shardOf(threadId: string, count: number): number {
  return count === 1 ? 0 : crc32(threadId) % count;
}

/** The reflection queue of shard n: `reflection` for shard 0 (as before shards), `reflection-<n>` after. */
export function reflectionQueueName(shard: number): string {
  return shard === 0 ? 'reflection' : `reflection-${shard}`;
}

/**
 * The K shards' key prefixes. K = 1: the prefix, untouched. K > 1: `{<prefix>:<n>.<salt>}` at
 * evenly spaced slots (`spreadTags`), so that K shards land K/M on each of M masters.
 */
export function shardTags(prefix: string, count: number): string[] {
  return count === 1 ? [prefix] : spreadTags(prefix, count);
}

export { SLOTS, slotOf } from '../core/hash-tags.js';

/** Concurrency per shard: the process total split evenly, at least 1 each (so K at least). */
export function splitConcurrency(total: number, count: number): number[] {
  const base = Math.floor(total / count);
  return Array.from({ length: count }, (_, n) => Math.max(1, base + (n < total % count ? 1 : 0)));
}
