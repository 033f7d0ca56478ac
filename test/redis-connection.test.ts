import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Cluster } from 'ioredis';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { startEmbeddedRedis } from '../src/app/embedded-redis.js';
import { parseEnv } from '../src/config/env.js';
import { createLogger } from '../src/observability/logger.js';
import { createRedis, redisClient, waitReady } from '../src/queue/connection.js';
import { checkEviction } from '../src/queue/eviction-check.js';
import { checkMemorySettings } from '../src/queue/memory-settings-check.js';
import { TEST_REDIS_CLUSTER, TEST_REDIS_URL } from './helpers/harness.js';
import { closedPort } from './helpers/ports.js';

type Line = { level: number; msg: string; node?: string; policy?: string; settings?: Record<string, unknown> };
const capture = () => {
  const lines: Line[] = [];
  const log = pino({ level: 'info' }, { write: (s: string) => void lines.push(JSON.parse(s) as Line) });
  return { lines, log };
};
/** A redis-server of the test's own, as the all-in-one process starts it: the shared one's settings are every test file's. */
async function withOwnRedis(fn: (redis: ReturnType<typeof redisClient>) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'engram-own-redis-'));
  const own = await startEmbeddedRedis(dir, createLogger({ level: 'silent' }));
  const redis = redisClient(own.url, {});
  try {
    await fn(redis);
  } finally {
    redis.disconnect();
    await own.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

const evictionWarnings = (lines: Line[]) =>
  lines.filter((l) => l.level === 50 && l.msg.startsWith('Redis maxmemory-policy is not noeviction'));

describe('the eviction check', () => {
  it('warns when a single Redis may evict, and not when it may not', async () => {
    await withOwnRedis(async (redis) => {
      const { lines, log } = capture();
      expect(await checkEviction(redis, log)).toEqual([]);
      await redis.config('SET', 'maxmemory-policy', 'allkeys-lru');
      expect(await checkEviction(redis, log)).toEqual(['redis']);
      expect(evictionWarnings(lines)).toMatchObject([{ policy: 'allkeys-lru' }]);
    });
  });

  it.runIf(TEST_REDIS_CLUSTER)('names each master of a cluster that may evict', async () => {
    const cluster = redisClient(TEST_REDIS_URL, {}) as Cluster;
    await waitReady(cluster);
    const masters = cluster.nodes('master').sort((a, b) => Number(a.options.port) - Number(b.options.port));
    expect(masters.length).toBeGreaterThanOrEqual(2);
    const second = masters[1]!;
    const name = `${second.options.host}:${second.options.port}`;
    try {
      const { lines, log } = capture();
      expect(await checkEviction(cluster, log)).toEqual([]);
      // One master of three: a check of the seed node alone would miss it.
      await second.config('SET', 'maxmemory-policy', 'volatile-lru');
      expect(await checkEviction(cluster, log)).toEqual([name]);
      expect(evictionWarnings(lines)).toMatchObject([{ node: name, policy: 'volatile-lru' }]);
    } finally {
      await second.config('SET', 'maxmemory-policy', 'noeviction');
      cluster.disconnect();
    }
  });
});

const memoryWarnings = (lines: Line[]) =>
  lines.filter((l) => l.level === 40 && l.msg.startsWith('Redis settings cost each pending thread more memory'));

describe('the memory settings check', () => {
  it('says which settings make a pending thread cost more, and nothing once they are set', async () => {
    // The embedded server starts with both settings, as compose does.
    await withOwnRedis(async (redis) => {
      const { lines, log } = capture();
      expect(await checkMemorySettings(redis, log)).toEqual([]);
      // Redis 7.0's defaults.
      await redis.config('SET', 'stream-node-max-bytes', '4096');
      await redis.config('SET', 'hash-max-listpack-value', '64');
      expect(await checkMemorySettings(redis, log)).toEqual(['redis']);
      expect(memoryWarnings(lines)).toMatchObject([
        {
          msg: expect.stringContaining('set stream-node-max-bytes 256 and hash-max-listpack-value 1024') as string,
          settings: {
            'stream-node-max-bytes': { is: 4096, advised: 256 },
            'hash-max-listpack-value': { is: 64, advised: 1024 },
          },
        },
      ]);
      // 0 is no limit at all: the stream's node as large as it grows.
      await redis.config('SET', 'hash-max-listpack-value', '1024');
      await redis.config('SET', 'stream-node-max-bytes', '0');
      lines.length = 0;
      expect(await checkMemorySettings(redis, log)).toEqual(['redis']);
      expect(memoryWarnings(lines)).toMatchObject([{ settings: { 'stream-node-max-bytes': { is: 0 } } }]);
      expect(Object.keys(memoryWarnings(lines)[0]?.settings ?? {})).toEqual(['stream-node-max-bytes']);
    });
  });

  it.runIf(TEST_REDIS_CLUSTER)('names each master of a cluster without them', async () => {
    const cluster = redisClient(TEST_REDIS_URL, {}) as Cluster;
    await waitReady(cluster);
    const masters = cluster.nodes('master').sort((a, b) => Number(a.options.port) - Number(b.options.port));
    const advise = (node: (typeof masters)[number]) =>
      Promise.all([
        node.config('SET', 'stream-node-max-bytes', '256'),
        node.config('SET', 'hash-max-listpack-value', '1024'),
      ]);
    const third = masters[2]!;
    try {
      await Promise.all(masters.map(advise));
      const { lines, log } = capture();
      expect(await checkMemorySettings(cluster, log)).toEqual([]);
      await third.config('SET', 'stream-node-max-bytes', '4096');
      const name = `${third.options.host}:${third.options.port}`;
      expect(await checkMemorySettings(cluster, log)).toEqual([name]);
      expect(memoryWarnings(lines)).toMatchObject([{ node: name }]);
    } finally {
      await advise(third);
      cluster.disconnect();
    }
  });
});

describe.runIf(TEST_REDIS_CLUSTER)('a cluster URL with several seed nodes', () => {
  it('connects while the first seed is down, and reaches every master', async () => {
    const live = new URL(TEST_REDIS_URL.replace('+cluster', '')).host;
    const url = `redis+cluster://127.0.0.1:${await closedPort()},${live}`;
    // The environment takes it as the SDK does (test/settings.test.ts), and a producer connects.
    expect(parseEnv({ OPENAI_API_KEY: 'k', REDIS_URL: url, ENGRAM_PREFIX: '{seeds}' }).REDIS_URL).toBe(url);
    const redis = createRedis(url, 'producer', createLogger({ level: 'silent' }));
    try {
      await waitReady(redis, { timeoutMs: 10_000 });
      expect(redis).toBeInstanceOf(Cluster);
      expect((redis as Cluster).nodes('master').length).toBeGreaterThanOrEqual(3);
      // Keys in slots of different masters: the client learnt the others from the live seed.
      const keys = ['{a}seeds', '{b}seeds', '{c}seeds'];
      for (const key of keys) await redis.set(key, key, 'EX', 30);
      expect(await Promise.all(keys.map((k) => redis.get(k)))).toEqual(keys);
      await Promise.all(keys.map((k) => redis.del(k)));
    } finally {
      redis.disconnect();
    }
  });
});
