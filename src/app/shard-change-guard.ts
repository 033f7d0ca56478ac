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
 * `engram` with more), so the prefix's other form is checked too, whether or not its own was
 * published: a change back from K to 1 finds `{engram}`'s own old publication, which matches.
 * Parked threads (failed for good, their turns kept for a retry) are only warned about: they are
 * already an operator's to handle, and would otherwise hold the change back for ever.
 */
export async function guardShardChange(redis: RedisClient, prefix: string, shards: number, log: Logger) {
  const layouts = await publishedLayouts(redis, prefix);
  // Every layout published but this one: on a cluster both forms of the prefix may hold one (a
  // change from 1 to K and back leaves `{engram}`'s old publication beside `engram`'s newer one).
  const others = layouts.filter((l) => !(l.prefix === prefix && l.shards === shards));
  for (const before of others) await checkLayout(redis, before, prefix, shards, log);
  const own = layouts.find((l) => l.prefix === prefix);
  if (others.length && (!own || own.shards !== shards))
    log.info(
      { before: others.map((l) => ({ shards: l.shards, prefix: l.prefix })), shards, prefix },
      'REDIS_SHARDS changed',
    );
}

/** Refuses while a layout other than this process's has turns pending; warns of its parked threads. */
async function checkLayout(redis: RedisClient, before: Layout, prefix: string, shards: number, log: Logger) {
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
}

interface Layout {
  prefix: string;
  shards: number;
  by: string;
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

/** The layouts published under this prefix and under its other form, those that were. */
async function publishedLayouts(redis: RedisClient, prefix: string): Promise<Layout[]> {
  const other = otherForm(prefix);
  const forms = other ? [prefix, other] : [prefix];
  const found = await Promise.all(forms.map(async (p) => ({ prefix: p, layout: await published(redis, p) })));
  return found.flatMap(({ prefix: p, layout }) => (layout ? [{ prefix: p, ...layout }] : []));
}

/** `{engram}` for `engram` and back: the prefix's form with the other shard count on a cluster. */
function otherForm(prefix: string): string | null {
  const tagged = /^\{([^{}]+)\}$/.exec(prefix);
  if (tagged) return tagged[1] as string;
  return /[{}]/.test(prefix) ? null : `{${prefix}}`;
}
