import { hostname } from 'node:os';
import { Cluster } from 'ioredis';
import { z } from 'zod';
import { kindRouteSchema, type KindRoute } from '../core/kind-route.js';
import { spreadTags } from '../core/hash-tags.js';
import type { RedisClient } from '../core/redis-layout.js';
import { PermanentError } from '../errors.js';
import { withTimeout } from '../with-timeout.js';
import type { Logger } from '../observability/logger.js';
import type { Env } from './env.js';
import { crossCheck, publishedShape, settings, type PublishedKey } from './settings.js';

/**
 * The settings that decide what an enqueue does (debounce, maxWait, policy, retry policy, kinds),
 * published by every service process in one Redis hash under the prefix, so that an SDK producer
 * needs connection details only (docs/decisions.md, "One source of truth for settings").
 */
export const settingsKey = (prefix: string) => `${prefix}:settings`;

/** Copies of the publication on a cluster: one at least on each master of up to 10 that split the slots evenly. */
export const SETTINGS_COPIES = 16;
/** How long a reader waits for the other copies once one answered with a publication. */
const COPY_GRACE_MS = 100;

/**
 * Where copies of the publication live: on a Redis Cluster whose prefix is not one hash tag, at
 * SETTINGS_COPIES tags of evenly spaced slots (`{<prefix>:settings:<n>.<salt>}`), so that a new
 * SDK client can read the settings while the master holding `<prefix>:settings` is down and take
 * turns for the shards on the other masters. None on one Redis, or under a tagged prefix (every
 * key of the deployment is then in one slot, down or up together).
 */
export function settingsCopyKeys(redis: RedisClient, prefix: string): string[] {
  if (!(redis instanceof Cluster) || prefix.includes('{')) return [];
  return spreadTags(`${prefix}:settings`, SETTINGS_COPIES);
}

/** Bumped when the payload changes shape: a reader refuses a format it does not know. */
export const SETTINGS_FORMAT = '1';

export const publishedSettingsSchema = z
  .strictObject({
    ...publishedShape(),
    kinds: z.array(kindRouteSchema).min(1).max(256),
    /** REDIS_SHARDS, present only when not 1 (settings.ts, `agreed`). */
    redisShards: settings.redisShards.schema.optional(),
  })
  .check(crossCheck((key) => key));
export type PublishedSettings = z.infer<typeof publishedSettingsSchema>;
export type { PublishedKey };

/** The hash as read back: input from outside (another process, another version), so checked. */
const hashSchema = z.object({
  format: z.literal(SETTINGS_FORMAT, {
    error: (issue) =>
      `is ${JSON.stringify(issue.input)}, a format this engram does not read (it reads ${SETTINGS_FORMAT}): use the same engram version for the SDK and the service`,
  }),
  version: z.string().regex(/^\d{1,15}$/, 'must be a counter'),
  publishedAt: z.iso.datetime(),
  publishedBy: z.string().max(500),
  settings: z
    .string()
    .max(1_000_000)
    .transform((text, ctx) => {
      try {
        return JSON.parse(text) as unknown;
      } catch {
        ctx.addIssue({ code: 'custom', message: 'is not JSON' });
        return z.NEVER;
      }
    })
    .pipe(publishedSettingsSchema),
});
export type Publication = z.infer<typeof hashSchema>;

/** What this process publishes: its environment's settings and its kinds. */
export function settingsOf(env: Env, kinds: readonly KindRoute[]): PublishedSettings {
  return publishedSettingsSchema.parse({
    debounceMs: env.DEBOUNCE_MS,
    maxWaitMs: env.MAX_WAIT_MS,
    policy: env.REFLECTION_POLICY,
    reflectionAttempts: env.REFLECTION_ATTEMPTS,
    reflectionBackoffMs: env.REFLECTION_BACKOFF_MS,
    kinds: kinds.map(({ name, namespace, debounceMs, mode, ttlMs, embedFields }) => ({
      name,
      namespace,
      debounceMs,
      mode,
      ttlMs,
      embedFields,
    })),
    ...(env.REDIS_SHARDS === 1 ? {} : { redisShards: env.REDIS_SHARDS }),
  });
}

/**
 * Writes the settings, with who wrote them and when, and bumps `version` (what producers poll).
 * Says so when they differ from the ones published before: two processes of one deployment with
 * different settings would flip producers to whichever started last.
 */
export async function publishSettings(
  redis: RedisClient,
  prefix: string,
  published: PublishedSettings,
  roles: string[],
  log: Logger,
): Promise<void> {
  const key = settingsKey(prefix);
  const json = JSON.stringify(published);
  const [before = null, beforeBy = null] = await redis.hmget(key, 'settings', 'publishedBy');
  const publishedBy = `${hostname()} pid ${process.pid} (${roles.join(', ')})`;
  const fields = { format: SETTINGS_FORMAT, settings: json, publishedAt: new Date().toISOString(), publishedBy };
  const replies = await redis.multi().hset(key, fields).hincrby(key, 'version', 1).exec();
  const version = replies?.[1]?.[1];
  if (typeof version === 'number') await writeCopies(redis, prefix, { ...fields, version: String(version) }, log);
  if (before !== null && before !== json)
    log.warn(
      { key, before: JSON.parse(before) as unknown, beforeBy, after: published },
      'published settings for producers that differ from the ones published before by another process; SDK clients switch to these',
    );
}

/**
 * Publishes again whenever Redis comes back without the settings: restarted without its data,
 * flushed, or failed over to a replica that never had them. Without this, new SDK producers
 * refused to start (no published settings) until some service process restarted. Checked on
 * every reconnection, one `HEXISTS`; returns what stops it.
 */
export function republishWhenLost(
  redis: RedisClient,
  prefix: string,
  published: PublishedSettings,
  roles: string[],
  log: Logger,
): () => void {
  const key = settingsKey(prefix);
  const onReady = () => {
    void redis
      .hexists(key, 'settings')
      .then(async (present) => {
        if (present) return;
        await publishSettings(redis, prefix, published, roles, log);
        log.warn({ key }, 'published settings were gone from Redis (restarted without its data?); published again');
      })
      .catch((err: unknown) => log.warn({ err, key }, 'could not check the published settings after a reconnection'));
  };
  redis.on('ready', onReady);
  return () => {
    redis.off('ready', onReady);
  };
}

/**
 * The copies carry the main key's version, so that a client that read a copy and polls the main
 * key sees no change. Best effort, within a bound: a master that is down or stalled must not stop
 * a service from starting (its copies stay as they were, and a reader prefers the newest version).
 */
async function writeCopies(redis: RedisClient, prefix: string, fields: Record<string, string>, log: Logger) {
  const keys = settingsCopyKeys(redis, prefix);
  if (!keys.length) return;
  const settled = await withTimeout(Promise.allSettled(keys.map((key) => redis.hset(key, fields))), 2_000).catch(
    () => null,
  );
  const failed = settled ? settled.filter((r) => r.status === 'rejected').length : keys.length;
  if (failed)
    log.warn(
      { copies: keys.length, failed, err: settled?.find((r) => r.status === 'rejected')?.reason as unknown },
      'could not write every copy of the published settings; a new SDK client may not read them while the master holding the settings is down',
    );
}

/**
 * The published settings, null when none were; PermanentError when they cannot be read. On a
 * cluster with copies, whichever comes first: the main key's publication, or the newest copy's
 * (below). When neither holds one, the main key decides: null if it answered empty, its error if
 * it failed.
 */
export async function readPublication(redis: RedisClient, prefix: string): Promise<Publication | null> {
  const main = readKey(redis, settingsKey(prefix));
  const copies = settingsCopyKeys(redis, prefix);
  if (!copies.length) return main;
  const held = main.then((p) => p ?? Promise.reject(new Error('no publication at the main key')));
  return Promise.any([held, newestCopy(copies.map((key) => readKey(redis, key)))]).catch(() => main);
}

/**
 * The copy with the highest version among those that answered by COPY_GRACE_MS after the first
 * that holds a publication; rejects once all have answered and none holds one. A copy that
 * fails, hangs or is invalid counts as no answer.
 */
function newestCopy(reads: Promise<Publication | null>[]): Promise<Publication> {
  return new Promise((resolve, reject) => {
    const found: Publication[] = [];
    let left = reads.length;
    let grace: NodeJS.Timeout | undefined;
    const done = () => {
      clearTimeout(grace);
      const newest = found.reduce<Publication | undefined>(
        (a, b) => (!a || Number(b.version) > Number(a.version) ? b : a),
        undefined,
      );
      if (newest) resolve(newest);
      else reject(new Error('no copy holds a publication'));
    };
    for (const read of reads)
      read
        .then(
          (p) => {
            if (!p) return;
            found.push(p);
            grace ??= setTimeout(done, COPY_GRACE_MS);
          },
          () => undefined,
        )
        .finally(() => {
          // With a publication in hand, the grace runs out all the same: a main key a little
          // slower than the copies still wins.
          left -= 1;
          if (left === 0 && !found.length) done();
        });
  });
}

async function readKey(redis: RedisClient, key: string): Promise<Publication | null> {
  const hash = await redis.hgetall(key);
  if (Object.keys(hash).length === 0) return null;
  const parsed = hashSchema.safeParse(hash);
  if (!parsed.success)
    throw new PermanentError(
      `the settings published in Redis at ${key} are invalid: ${z.prettifyError(parsed.error)}`,
      {
        cause: parsed.error,
      },
    );
  return parsed.data;
}

/** The version only: what a producer polls (one small reply). */
export function readVersion(redis: RedisClient, prefix: string): Promise<string | null> {
  return redis.hget(settingsKey(prefix), 'version');
}
