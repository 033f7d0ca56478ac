import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import type { Redis } from 'ioredis';
import { pino } from 'pino';
import { z } from 'zod';
import { Runtime } from '../src/app/runtime.js';
import { settingsKey } from '../src/config/published-settings.js';
import { InputError, PermanentError } from '../src/errors.js';
import { defaultKinds, defineKinds } from '../src/memory/kinds.js';
import { createLogger } from '../src/observability/logger.js';
import type { RedisClient } from '../src/queue/connection.js';
import { EngramClient, UnavailableError } from '../src/sdk/index.js';
import { foodieModel } from './fake-model/foodie.js';
import {
  deleteKeys,
  redisKeys,
  startHarness,
  TEST_DATABASE_URL,
  TEST_DIMENSIONS,
  TEST_REDIS_CLUSTER,
  TEST_REDIS_URL,
  testEnv,
  testRedis,
  threadJob,
  uniqueName,
  waitFor,
  type Harness,
} from './helpers/harness.js';

const silent = createLogger({ level: 'silent' });
const turn = (threadId: string, extra: object = {}) => ({
  threadId,
  context: { userId: 'u1', cuisine: 'thai' },
  messages: [{ role: 'user' as const, content: 'I cook green curry on Sundays' }],
  ...extra,
});

describe('the SDK, as the README shows it', () => {
  it('enqueues on first use without ready(), with the debounce the service published, and finds the memories', async () => {
    const h = await startHarness({ roles: ['reflection'], chat: foodieModel });
    onTestFinished(() => h.stop());
    // Connection details only: the quiet window (DEBOUNCE_MS=300 here) comes from the service.
    const engram = new EngramClient({
      redisUrl: TEST_REDIS_URL,
      databaseUrl: TEST_DATABASE_URL,
      prefix: h.env.ENGRAM_PREFIX,
      schema: h.env.DATABASE_SCHEMA,
      embedding: { apiKey: 'test-key', baseURL: h.model.url, dimensions: TEST_DIMENSIONS },
    });
    onTestFinished(() => engram.close());
    expect(
      await engram.enqueue({
        threadId: 't1',
        context: { userId: 'u1' },
        messages: [{ role: 'user', content: 'I love ramen! I also like pasta.' }],
      }),
    ).toEqual({ threadId: 't1', accepted: 1, duplicates: 0 });
    const memories = await waitFor(async () => {
      const found = await engram.search({ namespace: ['memories', 'u1'], query: 'food', limit: 5 });
      return found.length === 2 ? found : null;
    });
    expect(memories.map((m) => m.value.content).sort()).toEqual(['User likes pasta', 'User loves ramen']);
  });
});

describe('settings published by the service', () => {
  let h: Harness;
  let redis: RedisClient;
  const meta = (threadId: string) =>
    redis.hmget(h.runtime.buffer.keys(threadId).meta, 'debounceMs', 'maxWaitMs', 'policy');
  const job = async (threadId: string) => (await threadJob(h.runtime, threadId))?.opts;
  const client = (options: object = {}) => {
    const c = new EngramClient({ redisUrl: TEST_REDIS_URL, prefix: h.env.ENGRAM_PREFIX, log: silent, ...options });
    onTestFinished(() => c.close());
    return c;
  };

  beforeAll(async () => {
    // API only: nothing takes the jobs, so the test reads them as the SDK added them.
    h = await startHarness({
      roles: ['api'],
      env: {
        DEBOUNCE_MS: '45000',
        MAX_WAIT_MS: '90000',
        REFLECTION_POLICY: 'rollback',
        REFLECTION_ATTEMPTS: '3',
        REFLECTION_BACKOFF_MS: '1234',
      },
      runtime: {
        kinds: defineKinds([
          ...defaultKinds,
          {
            name: 'recipe',
            description: 'A dish the user cooks',
            namespace: ['recipes', '{userId}', '{cuisine}'],
            debounceMs: 20_000,
            schema: z.object({ dish: z.string() }),
          },
        ]),
      },
    });
    redis = testRedis();
  });
  afterAll(async () => {
    redis?.disconnect();
    await h?.stop();
  });

  it('are what the SDK enqueues with: debounce, maxWait, policy, retry policy and kinds', async () => {
    const sdk = client();
    await sdk.enqueue(turn('pub-memory', { kinds: ['memory'] }));
    expect(await meta('pub-memory')).toEqual(['45000', '90000', 'rollback']);
    expect(await job('pub-memory')).toMatchObject({
      delay: 45_000,
      attempts: 3,
      backoff: { type: 'exponential', delay: 1234 },
    });
    // A kind's own window, as published with its namespace template.
    await sdk.enqueue(turn('pub-recipe', { kinds: ['recipe'] }));
    expect((await job('pub-recipe'))?.delay).toBe(20_000);
    await expect(sdk.enqueue(turn('pub-x', { kinds: ['nope'] }))).rejects.toThrow(
      /unknown memory kind\(s\) nope; configured: memory, recipe/,
    );
    const noCuisine = { ...turn('pub-x', { kinds: ['recipe'] }), context: { userId: 'u1' } };
    const err = await sdk.enqueue(noCuisine).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InputError);
    expect((err as Error).message).toMatch(/context is missing "cuisine"/);
  });

  it('say who published them and when, and count publications', async () => {
    const hash = await redis.hgetall(settingsKey(h.env.ENGRAM_PREFIX));
    expect(hash).toMatchObject({ format: '1', version: '1', publishedBy: expect.stringMatching(/ pid \d+ \(api\)$/) });
    expect(Date.parse(hash.publishedAt!)).toBeGreaterThan(Date.now() - 600_000);
    expect(JSON.parse(hash.settings!)).toMatchObject({
      debounceMs: 45_000,
      kinds: [{ name: 'memory' }, { name: 'recipe' }],
    });
  });

  it('yield to options given to the client; options that contradict them are refused', async () => {
    const sdk = client({ debounceMs: 50_000, policy: 'enqueue', reflectionAttempts: 2 });
    await sdk.enqueue(turn('own-settings', { kinds: ['memory'] }));
    expect(await meta('own-settings')).toEqual(['50000', '90000', 'enqueue']);
    expect(await job('own-settings')).toMatchObject({ delay: 50_000, attempts: 2, backoff: { delay: 1234 } });
    // 200 s of quiet against the service's 90 s ceiling: what MAX_WAIT_MS would refuse in the env.
    const err = await client({ debounceMs: 200_000 })
      .enqueue(turn('too-long'))
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InputError);
    expect((err as Error).message).toMatch(
      /do not fit the settings published by .* pid \d+[\s\S]*must be at least debounceMs/,
    );
  });

  it('are read again when a service process publishes others', async () => {
    const sdk = client({ settingsRefreshMs: 100 });
    await sdk.enqueue(turn('before-change', { kinds: ['memory'] }));
    expect((await meta('before-change'))[0]).toBe('45000');
    // Another process of the deployment starts with another DEBOUNCE_MS.
    const env = testEnv(h.model.url, {
      ENGRAM_PREFIX: h.env.ENGRAM_PREFIX,
      DATABASE_SCHEMA: h.env.DATABASE_SCHEMA,
      DEBOUNCE_MS: '33000',
      MAX_WAIT_MS: '90000',
    });
    const other = new Runtime(env, silent, { kinds: defaultKinds });
    await other.start([]);
    await other.stop();
    let n = 0;
    await waitFor(async () => {
      const threadId = `after-change-${n++}`;
      await sdk.enqueue(turn(threadId, { kinds: ['memory'] }));
      return (await meta(threadId))[0] === '33000';
    });
    // Its kinds replaced the published ones too.
    await expect(sdk.enqueue(turn('after-kinds', { kinds: ['recipe'] }))).rejects.toThrow(/unknown memory kind/);
  });
  it('warn once while they cannot be read, and say when they can again', async () => {
    type Line = { level: number; msg: string; failedPolls?: number };
    const lines: Line[] = [];
    const log = pino({ level: 'debug' }, { write: (s: string) => void lines.push(JSON.parse(s) as Line) });
    const sdk = client({ settingsRefreshMs: 100, log });
    await sdk.enqueue(turn('poll-outage', { kinds: ['memory'] }));
    const key = settingsKey(h.env.ENGRAM_PREFIX);
    const saved = await redis.hgetall(key);
    // What a poll meets when the key cannot be read (here a WRONGTYPE error on every HGET).
    await redis.multi().del(key).set(key, 'not a hash').exec();
    const failed = (l: Line) => /published engram settings/.test(l.msg) && l.level >= 20 && l.level < 30;
    await waitFor(() => lines.filter(failed).length >= 3);
    // The client works on with the settings it had.
    await sdk.enqueue(turn('poll-during-outage', { kinds: ['memory'] }));
    const { debounceMs } = JSON.parse(saved.settings as string) as { debounceMs: number };
    expect((await meta('poll-during-outage'))[0]).toBe(String(debounceMs));
    await redis.multi().del(key).hset(key, saved).exec();
    const back = await waitFor(() => lines.find((l) => l.msg === 'the published engram settings are readable again'));
    const warned = lines.filter((l) => l.level === 40);
    expect(warned.map((l) => l.msg)).toEqual([
      'could not apply the published engram settings; keeping the current ones (said again once they are readable)',
    ]);
    expect(back.failedPolls).toBeGreaterThanOrEqual(4);
  });

  // On a cluster the settings have copies on every master, which a new client reads instead.
  it.runIf(!TEST_REDIS_CLUSTER)('are published again when Redis comes back without them', async () => {
    const key = settingsKey(h.env.ENGRAM_PREFIX);
    // What a Redis restarted without its data has lost: new producers cannot start.
    await redis.del(key);
    const early = client();
    await expect(early.enqueue(turn('settings-lost'))).rejects.toThrow(UnavailableError);
    // The service's connection drops and comes back, as after that restart.
    const id = await (h.runtime.producerRedis as Redis).client('ID');
    await redis.call('CLIENT', 'KILL', 'ID', String(id));
    await waitFor(() => redis.hexists(key, 'settings'));
    const sdk = client();
    await sdk.enqueue(turn('settings-back', { kinds: ['memory'] }));
    expect((await meta('settings-back'))[0]).toBe('45000');
  });
});

describe('the SDK without a service', () => {
  it('fails with UnavailableError saying what to do, and works once a service has published', async () => {
    const prefix = `engram-test-${uniqueName('early')}`;
    const sdk = new EngramClient({ redisUrl: TEST_REDIS_URL, prefix, log: silent });
    onTestFinished(() => sdk.close());
    const err = await sdk.enqueue(turn('early')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UnavailableError);
    expect((err as Error).message).toContain(`no engram service has published its settings at ${prefix}:settings`);
    expect((err as Error).message).toContain(`ENGRAM_PREFIX=${prefix}`);
    expect((err as Error).message).toMatch(/give the client debounceMs, maxWaitMs, policy, .*kinds/);
    // Nothing was written: the turn was refused before the buffer.
    const redis = testRedis();
    onTestFinished(() => redis.disconnect());
    expect(await redisKeys(redis, prefix)).toEqual([]);

    const h = await startHarness({
      roles: ['api'],
      env: { ENGRAM_PREFIX: prefix, DEBOUNCE_MS: '41000', MAX_WAIT_MS: '120000' },
    });
    onTestFinished(() => h.stop());
    expect(await sdk.enqueue(turn('early'))).toMatchObject({ accepted: 1 });
    expect(await h.runtime.buffer.read('early', null, 10, 0)).toMatchObject({ pending: [{}] });
    expect((await threadJob(h.runtime, 'early'))?.opts.delay).toBe(41_000);
  });

  it('refuses published settings it cannot read, with PermanentError naming what is wrong', async () => {
    const prefix = `engram-test-${uniqueName('badpub')}`;
    const redis = testRedis();
    onTestFinished(async () => {
      redis.disconnect();
      await deleteKeys(TEST_REDIS_URL, prefix);
    });
    const good = {
      debounceMs: 1000,
      maxWaitMs: 2000,
      policy: 'enqueue',
      reflectionAttempts: 5,
      reflectionBackoffMs: 5000,
      kinds: [{ name: 'memory', namespace: ['memories', '{userId}'] }],
    };
    const hash = { format: '1', version: '1', publishedAt: new Date().toISOString(), publishedBy: 'test' };
    for (const [fields, says] of [
      [{ ...hash, settings: JSON.stringify({ ...good, debounceMs: -1 }) }, /debounceMs/],
      [{ ...hash, settings: JSON.stringify({ ...good, kinds: [{ name: 'Bad Name', namespace: ['x'] }] }) }, /kinds/],
      [{ ...hash, settings: '{not json' }, /is not JSON/],
      [{ ...hash, format: '2', settings: JSON.stringify(good) }, /format this engram does not read/],
    ] as const) {
      await redis.del(settingsKey(prefix));
      await redis.hset(settingsKey(prefix), fields);
      const sdk = new EngramClient({ redisUrl: TEST_REDIS_URL, prefix, log: silent });
      const err = await sdk.connect().catch((e: unknown) => e);
      await sdk.close();
      expect(err, String(says)).toBeInstanceOf(PermanentError);
      expect((err as Error).message).toMatch(says);
    }
  });
});
