import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEmbeddedRedis, type EmbeddedRedis } from '../src/app/embedded-redis.js';
import { createLogger } from '../src/observability/logger.js';
import { UnavailableError } from '../src/sdk/errors.js';
import { sdkClient, startHarness, type Harness } from './helpers/harness.js';

/**
 * A Redis that is there but refuses writes (full: maxmemory under noeviction) is not an
 * unreachable one: the answer must send its operator to Redis' memory, not to the network.
 * Its own redis-server, since filling the shared one would fail every other test file.
 */
describe('a full Redis', () => {
  let dir: string;
  let redis: EmbeddedRedis;
  let admin: Redis;
  let h: Harness;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'engram-full-'));
    redis = await startEmbeddedRedis(dir, createLogger({ level: 'silent' }));
    admin = new Redis(redis.url);
    h = await startHarness({ roles: ['api'], env: { REDIS_URL: redis.url } });
  });
  afterAll(async () => {
    await admin?.config('SET', 'maxmemory', '0');
    admin?.disconnect();
    await h?.stop();
    await redis?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('is answered as out of memory, over HTTP and the SDK, and takes turns again once it has room', async () => {
    const send = () =>
      fetch(`${h.url}/v1/threads/t-full/turns`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ context: { userId: 'u1' }, messages: [{ role: 'user', content: 'I keep bees' }] }),
      });
    const sdk = sdkClient(h, { redisUrl: redis.url });
    try {
      await sdk.connect();
      await admin.config('SET', 'maxmemory', '1');
      const res = await send();
      expect(res.status).toBe(503);
      expect(((await res.json()) as { error: string }).error).toBe(
        'queue unavailable (Redis is out of memory: it refuses writes past its maxmemory); send the turns again later with the same message ids, which make a re-send a no-op',
      );
      const err = await sdk
        .enqueue({ threadId: 't-full', context: { userId: 'u1' }, messages: [{ role: 'user', content: 'hi' }] })
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(UnavailableError);
      expect((err as Error).message).toMatch(/^Redis is out of memory: it refuses writes past its maxmemory \(OOM /);
      await admin.config('SET', 'maxmemory', '0');
      expect((await send()).status).toBe(202);
    } finally {
      await sdk.close();
    }
  });
});
