import { hostname } from 'node:os';
import { z } from 'zod';
import { kindRouteSchema, type KindRoute } from '../core/kind-route.js';
import type { RedisClient } from '../core/redis-layout.js';
import { PermanentError } from '../errors.js';
import type { Logger } from '../observability/logger.js';
import type { Env } from './env.js';
import { crossCheck, publishedShape, settings, type PublishedKey } from './settings.js';

/**
 * The settings that decide what an enqueue does (debounce, maxWait, policy, retry policy, kinds),
 * published by every service process in one Redis hash under the prefix, so that an SDK producer
 * needs connection details only (docs/decisions.md, "One source of truth for settings").
 */
export const settingsKey = (prefix: string) => `${prefix}:settings`;

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
    kinds: kinds.map(({ name, namespace, debounceMs, mode }) => ({ name, namespace, debounceMs, mode })),
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
  await redis
    .multi()
    .hset(key, { format: SETTINGS_FORMAT, settings: json, publishedAt: new Date().toISOString(), publishedBy })
    .hincrby(key, 'version', 1)
    .exec();
  if (before !== null && before !== json)
    log.warn(
      { key, before: JSON.parse(before) as unknown, beforeBy, after: published },
      'published settings for producers that differ from the ones published before by another process; SDK clients switch to these',
    );
}

/** The published settings, null when none were; PermanentError when they cannot be read. */
export async function readPublication(redis: RedisClient, prefix: string): Promise<Publication | null> {
  const key = settingsKey(prefix);
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
