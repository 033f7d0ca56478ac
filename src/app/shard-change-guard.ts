import { settingsKey } from '../config/published-settings.js';
import type { RedisClient } from '../core/redis-layout.js';
import { PermanentError } from '../errors.js';
import type { Logger } from '../observability/logger.js';
import { BUFFER_DEFAULTS } from '../queue/buffer.js';
import { shardTags } from '../queue/shards.js';
import { ThreadBuffers } from '../queue/thread-buffers.js';

/**
 * Refuses to start a process whose REDIS_SHARDS differs from the layout its deployment last
 * published while threads have turns pending under that layout. Each shard count files a thread
 * under other keys and queues (docs/decisions.md, "Shards under hash tags"): a process with the
 * new count never reads the old layout's turns, and its producers file new ones where the old
 * processes do not look, so a change without the drain of docs/operations.md ("Changing
 * REDIS_SHARDS") loses turns without a word. Runs before this process publishes its own
 * settings, which would hide the old count.
 *
 * A change of count can also change the prefix's form on a cluster (`{engram}` with one shard,
 * `engram` with more), so a prefix never published before is checked in its other form too.
 * Parked threads (failed for good, their turns kept for a retry) are only warned about: they are
 * already an operator's to handle, and would otherwise hold the change back for ever.
 */
export async function guardShardChange(redis: RedisClient, prefix: string, shards: number, log: Logger) {
  const before = await lastLayout(redis, prefix);
  if (!before || (before.prefix === prefix && before.shards === shards)) return;
  // The old layout's buffers: their ceilings sets index the pending threads, one ZCARD a shard.
  const buffers = new ThreadBuffers(redis, shardTags(before.prefix, before.shards), BUFFER_DEFAULTS);
  const [pending, { count: parked }] = await Promise.all([buffers.pendingThreads(), buffers.parked(0)]);
  const old = `REDIS_SHARDS=${before.shards}${before.prefix === prefix ? '' : ` and ENGRAM_PREFIX=${before.prefix}`}`;
  if (pending > 0)
    throw new PermanentError(
      `REDIS_SHARDS is ${shards} (ENGRAM_PREFIX=${prefix}), but ${before.by} published ${old}, and ${pending} ` +
        `thread(s) have turns pending in that layout: this process would never reflect them. Drain the deployment ` +
        `first (docs/operations.md, "Changing REDIS_SHARDS"), or start with ${old}.`,
    );
  if (parked > 0)
    log.warn(
      { parked, before: { shards: before.shards, prefix: before.prefix }, shards, prefix },
      `the layout published before (${old}) has parked threads; their turns stay under it, where this process does not retry them`,
    );
  log.info({ before: { shards: before.shards, prefix: before.prefix }, shards, prefix }, 'REDIS_SHARDS changed');
}

/** The shard count a prefix's publication names (1 when it names none), or null when none was made. */
async function published(redis: RedisClient, prefix: string): Promise<{ shards: number; by: string } | null> {
  const [settings, by] = await redis.hmget(settingsKey(prefix), 'settings', 'publishedBy');
  if (settings == null) return null;
  // Read leniently: another engram version's publication still says how many shards it ran.
  let shards: unknown;
  try {
    shards = (JSON.parse(settings) as { redisShards?: unknown }).redisShards ?? 1;
  } catch {
    return null;
  }
  return Number.isInteger(shards) && (shards as number) >= 1
    ? { shards: shards as number, by: by ?? 'a process' }
    : null;
}

/** The layout last published under this prefix, or under its other form when it has none. */
async function lastLayout(redis: RedisClient, prefix: string) {
  const own = await published(redis, prefix);
  if (own) return { prefix, ...own };
  const other = otherForm(prefix);
  const theirs = other ? await published(redis, other) : null;
  return other && theirs ? { prefix: other, ...theirs } : null;
}

/** `{engram}` for `engram` and back: the prefix's form with the other shard count on a cluster. */
function otherForm(prefix: string): string | null {
  const tagged = /^\{([^{}]+)\}$/.exec(prefix);
  if (tagged) return tagged[1] as string;
  return /[{}]/.test(prefix) ? null : `{${prefix}}`;
}
