import { Cluster, Redis } from 'ioredis';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { Runtime } from '../src/app/runtime.js';
import { parseEnv } from '../src/config/env.js';
import { readPublication, SETTINGS_COPIES, settingsCopyKeys, settingsKey } from '../src/config/published-settings.js';
import { InputError } from '../src/errors.js';
import { createLogger } from '../src/observability/logger.js';
import { waitReady, type RedisClient } from '../src/queue/connection.js';
import { spreadTags } from '../src/core/hash-tags.js';
import { layoutProblem } from '../src/core/redis-layout.js';
import { shardOf, shardTags, slotOf, SLOTS, splitConcurrency } from '../src/queue/shards.js';
import { EngramClient } from '../src/sdk/client.js';
import { foodieModel } from './fake-model/foodie.js';
import {
  cleanup,
  nodeFor,
  redisKeys,
  startHarness,
  TEST_REDIS_CLUSTER,
  TEST_REDIS_URL,
  testEnv,
  testRedis,
  threadJob,
  uniqueName,
  waitFor,
  type Harness,
} from './helpers/harness.js';
import { jobs } from './helpers/jobs-cli.js';

const silent = createLogger({ level: 'silent' });
const turn = (threadId: string) => ({
  threadId,
  context: { userId: `u-${threadId}` },
  messages: [{ role: 'user' as const, content: 'I love ramen!' }],
});

describe('the shard layout', () => {
  it('one shard is the prefix itself: every key and queue name as before shards', () => {
    expect(shardTags('engram', 1)).toEqual(['engram']);
    expect(shardOf('any-thread', 1)).toBe(0);
  });

  it('puts K tags of the prefix at evenly spaced slots, the same every time', () => {
    for (const k of [2, 3, 4, 6, 16, 128]) {
      const tags = shardTags('engram', k);
      expect(tags).toEqual(shardTags('engram', k));
      expect(new Set(tags).size).toBe(k);
      tags.forEach((tag, n) => {
        expect(tag).toMatch(new RegExp(`^\\{engram:${n}\\.\\d+\\}$`));
        // In the middle half of the n-th of K equal slot ranges.
        const slot = slotOf(`${tag}:thread:t:turns`);
        expect(slot).toBeGreaterThanOrEqual((n * SLOTS) / k + SLOTS / k / 4 - 1);
        expect(slot).toBeLessThanOrEqual(((n + 1) * SLOTS) / k - SLOTS / k / 4 + 1);
      });
    }
    // Three masters splitting the slots as redis-cli --cluster create does: 2 shards of 6 each.
    const perMaster = [0, 0, 0];
    for (const tag of shardTags('engram-other', 6)) perMaster[Math.min(2, Math.floor(slotOf(tag) / 5461.34))]! += 1;
    expect(perMaster).toEqual([2, 2, 2]);
  });

  it('puts a copy of the published settings on every master of up to 10 that split the slots evenly', () => {
    for (const prefix of ['engram', 'acme-prod', 'e', 'tenant_42.chat']) {
      const slots = spreadTags(`${prefix}:settings`, SETTINGS_COPIES).map(slotOf);
      for (let masters = 1; masters <= 10; masters++)
        for (let m = 0; m < masters; m++) {
          const [low, high] = [Math.floor((m * SLOTS) / masters), Math.floor(((m + 1) * SLOTS) / masters) - 1];
          expect(
            slots.some((slot) => slot >= low && slot <= high),
            `${prefix}: master ${m} of ${masters}`,
          ).toBe(true);
        }
    }
  });

  it('spreads thread ids evenly over the shards', () => {
    const counts = [0, 0, 0, 0, 0, 0];
    for (let i = 0; i < 12_000; i++) counts[shardOf(`thread-${i}`, 6)]! += 1;
    for (const n of counts) expect(Math.abs(n - 2_000)).toBeLessThan(200);
    expect(shardOf('acme/t:1', 6)).toBe(shardOf('acme/t:1', 6));
  });

  it('splits the process concurrency over the shards, at least 1 each', () => {
    expect(splitConcurrency(8, 1)).toEqual([8]);
    expect(splitConcurrency(8, 3)).toEqual([3, 3, 2]);
    expect(splitConcurrency(2, 4)).toEqual([1, 1, 1, 1]);
  });

  it('refuses a prefix a layout cannot use, in the environment and the SDK alike', () => {
    expect(layoutProblem('redis://h:6379', 'engram', 1)).toBeNull();
    expect(layoutProblem('redis+cluster://h:7001', '{engram}', 1)).toBeNull();
    expect(layoutProblem('redis+cluster://h:7001', 'engram', 4)).toBeNull();
    const env = { OPENAI_API_KEY: 'k', REDIS_URL: 'redis+cluster://127.0.0.1:7001' };
    expect(() => parseEnv({ ...env, ENGRAM_PREFIX: 'engram' })).toThrow(
      /ENGRAM_PREFIX: must be a hash tag such as \{engram\} on a Redis Cluster with one shard.*\(REDIS_SHARDS is 1\)/,
    );
    expect(() => parseEnv({ ...env, ENGRAM_PREFIX: '{engram}', REDIS_SHARDS: '4' })).toThrow(
      /ENGRAM_PREFIX: must hold no \{ or \} when there are several shards.*\(REDIS_SHARDS is 4\)/,
    );
    expect(() => new EngramClient({ redisUrl: 'redis://127.0.0.1:6379', prefix: '{e}', redisShards: 2 })).toThrow(
      /invalid engram client options[\s\S]*must hold no \{ or \}[\s\S]*redisShards is 2/,
    );
    expect(() => new EngramClient({ redisUrl: 'rediss+cluster://127.0.0.1:7001', redisShards: 1 })).toThrow(
      /must be a hash tag such as \{engram\}/,
    );
  });
});

describe('a deployment of 3 shards', () => {
  let h: Harness;
  let redis: RedisClient;
  const threads = Array.from({ length: 24 }, (_, i) => `sh-${i}`);
  beforeAll(async () => {
    h = await startHarness({ roles: ['api', 'reflection'], chat: foodieModel, env: { REDIS_SHARDS: '3' } });
    redis = testRedis();
  });
  afterAll(async () => {
    redis?.disconnect();
    await h?.stop();
  });

  it("files each thread's keys and job under its shard's tag, publishes the shards, and reflects every shard", async () => {
    for (const t of threads) expect(await h.runtime.producer.enqueue(turn(t))).toMatchObject({ accepted: 1 });
    const tags = shardTags(h.env.ENGRAM_PREFIX, 3);
    const used = new Set<number>();
    for (const t of threads) {
      const shard = shardOf(t, 3);
      used.add(shard);
      const k = h.runtime.buffer.keys(t);
      // One slot for everything the append script and the thread's job touch.
      for (const key of [k.turns, k.ids, k.meta, k.lock, k.ceilings, `${tags[shard]}:reflection`])
        expect(slotOf(key), key).toBe(slotOf(tags[shard]!));
      expect(k.turns).toBe(`${tags[shard]}:thread:${t}:turns`);
    }
    expect(used.size).toBe(3);
    // Every key of the deployment is the prefix's settings key, one of their copies (on a cluster)
    // or under one of its shards' tags.
    const keys = await redisKeys(redis, h.env.ENGRAM_PREFIX);
    const settings = [settingsKey(h.env.ENGRAM_PREFIX), ...settingsCopyKeys(redis, h.env.ENGRAM_PREFIX)];
    expect(keys.filter((key) => !settings.includes(key) && !tags.some((t) => key.startsWith(t)))).toEqual([]);
    expect(JSON.parse((await redis.hget(settingsKey(h.env.ENGRAM_PREFIX), 'settings'))!)).toMatchObject({
      redisShards: 3,
    });
    // One process' workers consume every shard.
    await waitFor(async () => (await Promise.all(threads.map((t) => h.runtime.store.cursor(t)))).every(Boolean), {
      timeoutMs: 30_000,
    });
    // Each shard's queue ran jobs of its own threads.
    for (const queue of h.runtime.queues.reflection)
      await waitFor(async () => ((await queue.getJobCounts('completed')).completed ?? 0) > 0);
  });

  it('the SDK takes the published shards, and refuses a client that names others', async () => {
    const options = { redisUrl: TEST_REDIS_URL, prefix: h.env.ENGRAM_PREFIX, log: silent };
    const plain = new EngramClient(options);
    onTestFinished(() => plain.close());
    await plain.enqueue(turn('sdk-sharded'));
    expect((await h.runtime.buffer.read('sdk-sharded', null, 10, 0)).pending).toHaveLength(1);
    expect((await threadJob(h.runtime, 'sdk-sharded'))?.data).toEqual({ threadId: 'sdk-sharded' });
    const same = new EngramClient({ ...options, redisShards: 3 });
    onTestFinished(() => same.close());
    await expect(same.connect()).resolves.toBeUndefined();
    const other = new EngramClient({ ...options, redisShards: 2 });
    onTestFinished(() => other.close());
    const err = await other.enqueue(turn('sdk-other')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InputError);
    expect((err as Error).message).toMatch(/redisShards is 2, but the service .* runs with REDIS_SHARDS=3/);
  });

  it('the jobs CLI reads the published shards, lists every shard, and asks for --queue when an id is ambiguous', async () => {
    const env = { REDIS_URL: TEST_REDIS_URL, ENGRAM_PREFIX: h.env.ENGRAM_PREFIX };
    const counts = await jobs(['counts'], env);
    expect(
      counts.stdout
        .trim()
        .split('\n')
        .map((l) => (JSON.parse(l) as { queue?: string }).queue),
    ).toEqual(['reflection', 'reflection-1', 'reflection-2', 'consolidation', undefined]);
    // Job ids count per queue: each shard has a job 1.
    const ambiguous = await jobs(['retry', '--job', '1'], env);
    expect([ambiguous.code, ambiguous.stderr]).toEqual([
      1,
      expect.stringMatching(/job 1 is in reflection, reflection-1, reflection-2: say which with --queue/),
    ]);
    const named = await jobs(['retry', '--job', '1', '--queue', 'reflection-1'], env);
    expect([named.code, named.stderr]).toEqual([1, expect.stringMatching(/job 1 is completed, not failed/)]);
    const bad = await jobs(['failed', '--queue', 'reflection-3'], env);
    expect(bad.stderr).toMatch(/--queue must be one of reflection, reflection-1, reflection-2, consolidation/);
  });
});

describe('a change of REDIS_SHARDS', () => {
  it('refuses to start while threads are pending under the layout published before, then warns of parked ones', async () => {
    type Line = { level: number; msg: string; parked?: number };
    const lines: Line[] = [];
    const log = pino({ level: 'info' }, { write: (s: string) => void lines.push(JSON.parse(s) as Line) });
    const redis = testRedis();
    onTestFinished(() => redis.disconnect());
    // One shard, then three: on a cluster the prefix changes form too ({p} to p).
    const base = `engram-test-${uniqueName('reshard')}`;
    const model = 'http://127.0.0.1:9/v1';
    const before = testEnv(model, { REDIS_SHARDS: '1', ENGRAM_PREFIX: TEST_REDIS_CLUSTER ? `{${base}}` : base });
    const after = testEnv(model, { REDIS_SHARDS: '3', ENGRAM_PREFIX: base });
    const runtime = (env: typeof before, logger = silent) => {
      const r = new Runtime(env, logger);
      onTestFinished(async () => {
        await r.stop();
        await cleanup(env);
      });
      return r;
    };
    const old = runtime(before);
    await old.migrate();
    await old.start(['api']);
    expect(await old.producer.enqueue(turn('waiting'))).toMatchObject({ accepted: 1 });

    const refused = runtime(after, log);
    await refused.migrate();
    await expect(refused.start(['api'])).rejects.toThrow(
      new RegExp(
        `REDIS_SHARDS is 3 \\(ENGRAM_PREFIX=${base}\\), but .+ published REDIS_SHARDS=1.* and 1 thread\\(s\\) have turns pending in that layout`,
      ),
    );
    // The old layout's publication stands: SDK clients keep filing turns where its workers look.
    const stood = await redis.hget(settingsKey(before.ENGRAM_PREFIX), 'settings');
    expect(JSON.parse(stood!)).not.toHaveProperty('redisShards');

    // Failed for good: parked, its turns kept. That only warns.
    await old.buffer.park('waiting');
    await old.stop();
    const next = runtime(after, log);
    await next.migrate();
    await next.start(['api']);
    expect(lines.filter((l) => l.msg.startsWith('the layout published before'))).toMatchObject([
      { level: 40, parked: 1 },
    ]);
    expect(JSON.parse((await redis.hget(settingsKey(base), 'settings'))!)).toMatchObject({ redisShards: 3 });

    // And back, with a turn pending in the three shards: refused as well. On a cluster the old
    // prefix's own publication (one shard, `{p}`) still stands beside `p`'s and matches it.
    expect(await next.producer.enqueue(turn('after'))).toMatchObject({ accepted: 1 });
    await next.stop();
    const back = runtime(before, log);
    await expect(back.start(['api'])).rejects.toThrow(
      new RegExp(
        `REDIS_SHARDS is 1 \\(ENGRAM_PREFIX=\\{?${base}\\}?\\), but .+ published REDIS_SHARDS=3.* and 1 thread\\(s\\) have turns pending in that layout`,
      ),
    );
  });
});

describe('a reflection process with fewer slots than shards', () => {
  it('warns at start that it runs one reflection per shard', async () => {
    type Line = { level: number; msg: string; concurrency?: number; shards?: number };
    const lines: Line[] = [];
    const log = pino({ level: 'warn' }, { write: (s: string) => void lines.push(JSON.parse(s) as Line) });
    const say = (concurrency: string) => {
      const env = testEnv('http://127.0.0.1:9/v1', { REDIS_SHARDS: '3', REFLECTION_CONCURRENCY: concurrency });
      const runtime = new Runtime(env, log);
      onTestFinished(async () => {
        await runtime.stop();
        await cleanup(env);
      });
      return runtime;
    };
    const below = say('2');
    await below.migrate();
    await below.start(['reflection']);
    expect(lines.filter((l) => l.msg.startsWith('REFLECTION_CONCURRENCY is below REDIS_SHARDS'))).toMatchObject([
      { level: 40, concurrency: 2, shards: 3 },
    ]);
    lines.length = 0;
    const enough = say('3');
    await enough.migrate();
    await enough.start(['reflection']);
    expect(lines.filter((l) => l.msg.startsWith('REFLECTION_CONCURRENCY'))).toEqual([]);
  });
});

describe.runIf(TEST_REDIS_CLUSTER)('on the Redis Cluster', () => {
  it("one shard under a tagged prefix keeps the old layout's names, in one slot", async () => {
    const prefix = `{engram-test-${uniqueName('one')}}`;
    const h = await startHarness({ roles: ['api'], env: { REDIS_SHARDS: '1', ENGRAM_PREFIX: prefix } });
    onTestFinished(() => h.stop());
    await h.runtime.producer.enqueue(turn('solo'));
    const redis = testRedis();
    onTestFinished(() => redis.disconnect());
    const keys = await redisKeys(redis, prefix);
    expect(keys).toContain(`${prefix}:thread:solo:turns`);
    expect(keys.some((k) => k.startsWith(`${prefix}:reflection:`))).toBe(true);
    expect(new Set(keys.map(slotOf)).size).toBe(1);
  });

  describe('the published settings, copied over the masters', () => {
    let h: Harness;
    let redis: RedisClient;
    beforeAll(async () => {
      // A retry policy no default has, to tell where a client's settings came from.
      h = await startHarness({ roles: ['api'], env: { REDIS_SHARDS: '3', REFLECTION_ATTEMPTS: '7' } });
      redis = testRedis();
    });
    afterAll(async () => {
      redis?.disconnect();
      await h?.stop();
    });

    it('writes a copy with the same version on every master', async () => {
      const prefix = h.env.ENGRAM_PREFIX;
      const copies = settingsCopyKeys(redis, prefix);
      expect(copies).toHaveLength(SETTINGS_COPIES);
      const main = await redis.hgetall(settingsKey(prefix));
      for (const key of copies) expect(await redis.hgetall(key), key).toEqual(main);
      await waitReady(redis);
      const cluster = redis as Cluster;
      const masters = new Set(copies.map((key) => cluster.slots[slotOf(key)]?.[0]));
      expect(masters.size).toBe(cluster.nodes('master').length);
      // None on one Redis, or under a tagged prefix (one slot for everything).
      expect(settingsCopyKeys(redis, '{engram}')).toEqual([]);
    });

    it('a new SDK client reads a copy when the settings key is gone, as after a failover that lost it', async () => {
      const prefix = h.env.ENGRAM_PREFIX;
      const main = await redis.hgetall(settingsKey(prefix));
      await redis.del(settingsKey(prefix));
      onTestFinished(async () => void (await redis.hset(settingsKey(prefix), main)));
      const client = new EngramClient({ redisUrl: TEST_REDIS_URL, prefix, enqueueTimeoutMs: 2_000, log: silent });
      onTestFinished(() => client.close());
      expect(await client.enqueue(turn('copy-reader'))).toMatchObject({ accepted: 1 });
      expect((await threadJob(h.runtime, 'copy-reader'))?.opts.attempts).toBe(7);
    });

    it('takes the newest copy while the master holding the settings key does not answer', async () => {
      const prefix = h.env.ENGRAM_PREFIX;
      const copies = settingsCopyKeys(redis, prefix);
      const main = await redis.hgetall(settingsKey(prefix));
      // One copy a version ahead (a publication whose main write this reader cannot see), one behind.
      const ahead = copies.find((key) => nodeFor(redis, key) !== nodeFor(redis, settingsKey(prefix)))!;
      const behind = copies.find((key) => key !== ahead)!;
      await redis.hset(ahead, 'version', String(Number(main.version) + 1));
      await redis.hset(behind, 'version', String(Number(main.version) - 1));
      onTestFinished(async () => void (await Promise.all([redis.hset(ahead, main), redis.hset(behind, main)])));
      // The main key answers: it wins, whatever the copies hold.
      expect((await readPublication(redis, prefix))?.version).toBe(main.version);

      // Its master stalls (CLIENT PAUSE on a connection of its own): the newest copy answers the
      // read, before a read of the main key queued behind the pause does.
      const { host, port } = nodeFor(redis, settingsKey(prefix)).options;
      const node = new Redis({ host, port, lazyConnect: true });
      onTestFinished(() => node.disconnect());
      await node.call('client', 'pause', '1500', 'all');
      const order: string[] = [];
      const probe = redis.hget(settingsKey(prefix), 'version').then(() => order.push('main key'));
      const read = readPublication(redis, prefix).then((p) => {
        order.push('read');
        return p;
      });
      expect((await read)?.version).toBe(String(Number(main.version) + 1));
      await probe;
      expect(order).toEqual(['read', 'main key']);
    });
  });
});
