import { Redis, type RedisOptions } from 'ioredis';
import type { Logger } from '../observability/logger.js';

/**
 * `lazy`: connect on first use (the SDK's client), not at once.
 * Producers fail fast (no offline queue, one retry): a chat turn must get an error at once
 * when Redis is down, not hang. A stalled (connected but silent) Redis is the Producer's
 * deadline's job, not ioredis' `commandTimeout`, which costs a timer per command (deadline.ts).
 * Workers wait forever (`maxRetriesPerRequest: null`, which BullMQ requires for blocking
 * connections) and ride out a Redis restart.
 */
export function createRedis(
  url: string,
  role: 'producer' | 'worker',
  log: Logger,
  { lazy = false }: { lazy?: boolean } = {},
): Redis {
  const opts: RedisOptions =
    role === 'producer'
      ? { enableOfflineQueue: false, maxRetriesPerRequest: 1, connectTimeout: 2_000, lazyConnect: lazy }
      : { maxRetriesPerRequest: null, enableReadyCheck: true };
  const redis = new Redis(url, { ...opts, connectionName: `engram-${role}` });
  // Without an `error` listener ioredis crashes the host on a Redis restart (docs/prior-art.md: mem0 #7294).
  redis.on('error', (err) => log.warn({ err, role }, 'redis connection error'));
  return redis;
}

/** Resolves once the connection is ready (producers must not accept turns before). */
export async function waitReady(redis: Redis, timeoutMs = 5_000): Promise<void> {
  if (redis.status === 'ready') return;
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`Redis not ready after ${timeoutMs} ms (status ${redis.status})`));
    }, timeoutMs);
    const onReady = () => {
      cleanup();
      resolve();
    };
    const cleanup = () => {
      clearTimeout(timer);
      redis.off('ready', onReady);
    };
    redis.on('ready', onReady);
  });
}
