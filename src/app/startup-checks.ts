import type { Env } from '../config/env.js';
import { publishSettings, republishWhenLost, settingsOf } from '../config/published-settings.js';
import type { MemoryKind } from '../memory/kinds.js';
import type { Logger } from '../observability/logger.js';
import { waitReady, type RedisClient } from '../queue/connection.js';
import { checkEviction } from '../queue/eviction-check.js';
import { checkMemorySettings } from '../queue/memory-settings-check.js';
import type { Db } from '../store/db.js';
import { checkDimensions, checkMigrated } from '../store/migrate.js';
import type { Role } from './runtime.js';
import { guardShardChange } from './shard-change-guard.js';

/**
 * What a process checks and publishes before it takes work, Redis and Postgres at once: Redis
 * waited for (a process started before it keeps waiting), the shard layout it ran with guarded,
 * its eviction and memory settings checked, this process' settings published for SDK producers
 * (and again whenever Redis comes back without them); the store's embedding size, text-search
 * configuration, vector storage and migrations checked. The republisher's stop goes to
 * `onStop` as soon as it runs, so that a process whose Postgres check fails still stops it.
 */
export async function checkAndPublish(p: {
  env: Env;
  kinds: MemoryKind[];
  roles: Role[];
  redis: RedisClient;
  db: Db;
  log: Logger;
  onStop: (stop: () => void) => void;
}): Promise<void> {
  const { env, kinds, roles, redis, db, log } = p;
  await Promise.all([
    waitReady(redis, { log }).then(async () => {
      // Before this process' publication replaces the layout the deployment ran with.
      await guardShardChange(redis, env.ENGRAM_PREFIX, env.REDIS_SHARDS, log);
      await Promise.all([
        checkEviction(redis, log),
        checkMemorySettings(redis, log),
        // What SDK producers read instead of repeating this process' settings.
        publishSettings(redis, env.ENGRAM_PREFIX, settingsOf(env, kinds), roles, log),
      ]);
      p.onStop(republishWhenLost(redis, env.ENGRAM_PREFIX, settingsOf(env, kinds), roles, log));
    }),
    checkDimensions(
      db,
      env.DATABASE_SCHEMA,
      env.EMBEDDING_DIMENSIONS,
      env.STORE_TEXT_SEARCH_CONFIG,
      env.STORE_VECTOR_STORAGE,
    ).then(() => checkMigrated(db, env.DATABASE_SCHEMA)),
  ]);
}
