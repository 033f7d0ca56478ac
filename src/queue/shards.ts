import { crc32 } from 'node:zlib';
import calculateSlot from 'cluster-key-slot';

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

/** Redis Cluster's slots. */
export const SLOTS = 16_384;
/** Salts tried per shard before the first one is kept (never reached: about 2K suffice). */
const MAX_SALT = 100_000;

/** A thread's shard: CRC-32 of its id mod K (0 without hashing when there is one shard). */
export function shardOf(threadId: string, count: number): number {
  return count === 1 ? 0 : crc32(threadId) % count;
}

/** The reflection queue of shard n: `reflection` for shard 0 (as before shards), `reflection-<n>` after. */
export function reflectionQueueName(shard: number): string {
  return shard === 0 ? 'reflection' : `reflection-${shard}`;
}

/**
 * The K shards' key prefixes. K = 1: the prefix, untouched. K > 1: `{<prefix>:<n>.<salt>}`, the
 * salt the first that puts the tag's slot in the middle half of the n-th of K equal slot ranges:
 * tags at evenly spaced slots land K/M on each of M masters that split the slots evenly (as
 * `redis-cli --cluster create` does). Without a salt, CRC16 placed 3 of 6 tags on one master of
 * three. Pure and deterministic: every producer and worker computes the same tags.
 */
export function shardTags(prefix: string, count: number): string[] {
  if (count === 1) return [prefix];
  const width = SLOTS / count;
  return Array.from({ length: count }, (_, n) => {
    const low = Math.ceil(n * width + width / 4);
    const high = Math.floor((n + 1) * width - width / 4);
    for (let salt = 0; salt < MAX_SALT; salt++) {
      const tag = `{${prefix}:${n}.${salt}}`;
      const slot = calculateSlot(tag);
      if (slot >= low && slot <= high) return tag;
    }
    return `{${prefix}:${n}.0}`;
  });
}

/** The slot of a key, as Redis Cluster computes it. */
export const slotOf = (key: string): number => calculateSlot(key);

/** Concurrency per shard: the process total split evenly, at least 1 each (so K at least). */
export function splitConcurrency(total: number, count: number): number[] {
  const base = Math.floor(total / count);
  return Array.from({ length: count }, (_, n) => Math.max(1, base + (n < total % count ? 1 : 0)));
}
