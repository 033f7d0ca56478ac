import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../src/observability/logger.js';
import { RetryableError } from '../src/errors.js';
import { defaultKinds } from '../src/memory/kinds.js';
import { EngramClient } from '../src/sdk/client.js';
import { UnavailableError } from '../src/sdk/errors.js';
import type { RedisClient } from '../src/queue/connection.js';
import {
  deleteKeys,
  nodeFor,
  reflectionCounts,
  redisKeys,
  startHarness,
  TEST_REDIS_SHARDS,
  TEST_REDIS_URL,
  testRedis,
  uniqueName,
  type Harness,
} from './helpers/harness.js';
import { watchCommands } from './helpers/redis-monitor.js';

describe('hot path: enqueue', () => {
  let h: Harness;
  let redis: RedisClient;
  beforeAll(async () => {
    // API only: nothing consumes the jobs, so the test sees exactly what enqueue wrote.
    h = await startHarness({ roles: ['api'], env: { DEBOUNCE_MS: '60000', MAX_WAIT_MS: '120000' } });
    redis = testRedis();
  });
  afterAll(async () => {
    redis?.disconnect();
    await h?.stop();
  });

  const post = (path: string, body: unknown, contentType = 'application/json') =>
    fetch(`${h.url}${path}`, {
      method: 'POST',
      headers: { 'content-type': contentType },
      body: typeof body === 'string' ? body : JSON.stringify(body),
    });

  it.each([
    ['no messages', { context: { userId: 'u' }, messages: [] }, /messages/],
    ['an empty message', { context: { userId: 'u' }, messages: [{ role: 'user', content: '' }] }, /must not be empty/],
    ['an unknown role', { context: { userId: 'u' }, messages: [{ role: 'robot', content: 'hi' }] }, /role/],
    ['an unknown field', { context: { userId: 'u' }, messages: [{ role: 'user', content: 'hi' }], extra: 1 }, /extra/],
    [
      'a context without userId',
      { context: { orgId: 'o' }, messages: [{ role: 'user', content: 'hi' }] },
      /context is missing "userId"/,
    ],
    [
      'an unknown kind',
      { context: { userId: 'u' }, kinds: ['recipes'], messages: [{ role: 'user', content: 'hi' }] },
      /unknown memory kind.*recipes/,
    ],
    ['a bad message id', { context: { userId: 'u' }, messages: [{ id: 'a b', role: 'user', content: 'hi' }] }, /id/],
    [
      'too many messages',
      { context: { userId: 'u' }, messages: Array.from({ length: 101 }, () => ({ role: 'user', content: 'hi' })) },
      /messages/,
    ],
    [
      'a message over 32,000 characters',
      { context: { userId: 'u' }, messages: [{ role: 'user', content: 'x'.repeat(32_001) }] },
      /messages\[0\]\.content/,
    ],
    [
      'a context key that is no identifier',
      { context: { userId: 'u', 'user id': 'u' }, messages: [{ role: 'user', content: 'hi' }] },
      /context keys must be identifiers[\s\S]*context\["user id"\]/,
    ],
    [
      'an empty context value',
      { context: { userId: '' }, messages: [{ role: 'user', content: 'hi' }] },
      /must be 1 to 256 characters[\s\S]*context\.userId/,
    ],
    [
      'a context value holding NUL',
      { context: { userId: 'u\u0000' }, messages: [{ role: 'user', content: 'hi' }] },
      /must not contain NUL characters[\s\S]*context\.userId/,
    ],
    [
      'more than 16 context keys',
      {
        context: Object.fromEntries(Array.from({ length: 17 }, (_, i) => [i ? `k${i}` : 'userId', 'v'])),
        messages: [{ role: 'user', content: 'hi' }],
      },
      /at most 16 context keys/,
    ],
    [
      'a message id over 128 characters',
      { context: { userId: 'u' }, messages: [{ id: 'm'.repeat(129), role: 'user', content: 'hi' }] },
      /must be 1 to 128 characters/,
    ],
  ])('rejects %s with 400 and writes nothing', async (_name, body, message) => {
    const before = await redisKeys(redis, h.env.ENGRAM_PREFIX);
    const res = await post('/v1/threads/t-bad/turns', body);
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: string }).error).toMatch(message);
    expect(await redisKeys(redis, h.env.ENGRAM_PREFIX)).toEqual(before);
  });

  it('rejects malformed JSON, a body over the limit, another content type and a bad thread id', async () => {
    const before = await redisKeys(redis, h.env.ENGRAM_PREFIX);
    expect((await post('/v1/threads/t/turns', '{"context":')).status).toBe(400);
    // The largest valid request (100 messages of 32,000 characters) fits the 4 MiB limit; more is refused unread.
    const huge = await post('/v1/threads/t/turns', {
      context: { userId: 'u' },
      messages: [{ role: 'user', content: 'x'.repeat(5 * 1024 * 1024) }],
    });
    expect(huge.status).toBe(413);
    expect(((await huge.json()) as { error: string }).error).toMatch(/too large/i);
    const text = await post('/v1/threads/t/turns', 'hello', 'text/plain');
    expect(text.status).toBe(415);
    expect(((await text.json()) as { error: string }).error).toMatch(/must be JSON[\s\S]*text\/plain/);
    const res = await post('/v1/threads/bad%20id/turns', {
      context: { userId: 'u' },
      messages: [{ role: 'user', content: 'hi' }],
    });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: string }).error).toMatch(/threadId/);
    expect(await redisKeys(redis, h.env.ENGRAM_PREFIX)).toEqual(before);
  });

  it('answers an unknown route with 404 in the same error shape', async () => {
    const res = await post('/v1/thread/t/turns', {
      context: { userId: 'u' },
      messages: [{ role: 'user', content: 'hi' }],
    });
    expect(res.status).toBe(404);
    expect(await res.json()).toEqual({ error: 'no route POST /v1/thread/t/turns' });
  });

  it('answers a known path asked with the wrong method with 405 and Allow, and writes nothing', async () => {
    const before = await redisKeys(redis, h.env.ENGRAM_PREFIX);
    const wrong = await fetch(`${h.url}/v1/threads/t-405/turns?x=1`, { method: 'PUT', body: '{}' });
    expect(wrong.status).toBe(405);
    expect(wrong.headers.get('allow')).toBe('POST');
    expect(await wrong.json()).toEqual({ error: 'PUT is not served at /v1/threads/t-405/turns?x=1: it answers POST' });
    // A path served by several methods names them all.
    const items = await fetch(`${h.url}/v1/store/items`, { method: 'PATCH' });
    expect(items.status).toBe(405);
    expect(items.headers.get('allow')).toBe('GET, PUT, DELETE');
    expect(await redisKeys(redis, h.env.ENGRAM_PREFIX)).toEqual(before);
  });

  it('answers HEAD on the probes only: a HEAD on a read does not run it', async () => {
    expect((await fetch(`${h.url}/healthz`, { method: 'HEAD' })).status).toBe(200);
    expect((await fetch(`${h.url}/readyz`, { method: 'HEAD' })).status).toBe(200);
    const search = await fetch(`${h.url}/v1/memories/search?namespace=u&query=tea`, { method: 'HEAD' });
    expect(search.status).toBe(405);
    expect(search.headers.get('allow')).toBe('GET');
  });

  it('buffers a message sent twice once, and keeps one delayed job per thread', async () => {
    /** engram_turns_enqueued_total by result, as /metrics shows it. */
    const counted = async () => {
      const text = await (await fetch(`${h.url}/metrics`)).text();
      return Object.fromEntries(
        [...text.matchAll(/^engram_turns_enqueued_total\{result="(\w+)"\} (\d+)$/gm)].map((m) => [m[1], Number(m[2])]),
      );
    };
    const before = await counted();
    const body = { context: { userId: 'u1' }, messages: [{ id: 'm-1', role: 'user', content: 'I moved to Lisbon' }] };
    const first = await post('/v1/threads/t-dup/turns', body);
    expect(first.status).toBe(202);
    expect(await first.json()).toEqual({ threadId: 't-dup', accepted: 1, duplicates: 0 });
    expect(await (await post('/v1/threads/t-dup/turns', body)).json()).toEqual({
      threadId: 't-dup',
      accepted: 0,
      duplicates: 1,
    });
    expect(
      await (
        await post('/v1/threads/t-dup/turns', {
          ...body,
          messages: [...body.messages, { id: 'm-2', role: 'assistant', content: 'Nice!' }],
        })
      ).json(),
    ).toEqual({ threadId: 't-dup', accepted: 1, duplicates: 1 });

    const snapshot = await h.runtime.buffer.read('t-dup', null, 100, 0);
    expect(snapshot.pending.map((e) => e.turn.id)).toEqual(['m-1', 'm-2']);
    expect(snapshot.context).toEqual({ userId: 'u1' });
    const counts = await reflectionCounts(h.runtime, 'delayed', 'waiting', 'active');
    expect(counts).toEqual({ delayed: 1, waiting: 0, active: 0 });
    const after = await counted();
    expect([(after.accepted ?? 0) - (before.accepted ?? 0), (after.duplicate ?? 0) - (before.duplicate ?? 0)]).toEqual([
      2, 2,
    ]);
  });

  it('costs one Redis command per turn, two for the first turn since the last reflection started', async () => {
    const producer = h.runtime.producerRedis;
    const send = (content: string) =>
      h.runtime.producer.enqueue({ threadId: 't-rt', context: { userId: 'u' }, messages: [{ role: 'user', content }] });
    await send('warm the script cache');
    await h.runtime.buffer.clearScheduled('t-rt'); // as if a reflection had started
    // The node of the thread's shard: on a cluster, the producer's connection to that master.
    const node = nodeFor(producer, h.runtime.buffer.keys('t-rt').turns);
    const addr = /(?:^| )addr=(\S+)/.exec(String(await node.client('INFO')))?.[1];
    const monitor = await watchCommands(node.options.host as string, node.options.port as number);
    const commandsOf = async (content: string) => {
      monitor.clear();
      await send(content);
      await new Promise((r) => setTimeout(r, 100)); // MONITOR lines arrive asynchronously
      return monitor.seen.filter((c) => c.source === addr).map((c) => c.command);
    };
    expect(await commandsOf('first of a burst')).toEqual(['evalsha', 'evalsha']); // append, add job
    expect(await commandsOf('second')).toEqual(['evalsha']); // append only
    expect(await commandsOf('third')).toEqual(['evalsha']);
    monitor.close();
  });

  it('refuses turns for a thread whose pending turns belong to another context', async () => {
    const msg = (content: string) => [{ role: 'user', content }];
    expect((await post('/v1/threads/t-ctx/turns', { context: { userId: 'alice' }, messages: msg('hi') })).status).toBe(
      202,
    );
    const res = await post('/v1/threads/t-ctx/turns', { context: { userId: 'bob' }, messages: msg('hello') });
    expect(res.status).toBe(409);
    expect(((await res.json()) as { error: string }).error).toMatch(/another context/);
    expect((await h.runtime.buffer.read('t-ctx', null, 100, 0)).pending).toHaveLength(1);
  });

  it('buffers every message exactly as sent, whatever its content holds', async () => {
    const contents = [
      'say "hi" \\ then \n leave',
      'tab\there\r\u0000\u001f end',
      'emoji 🚆, accents àé, CJK 東京, \u2028\u2029',
      '</script><!-- {"role":"system"} -->',
      '\ud800 a lone surrogate',
    ];
    const messages = [
      ...contents.map((content) => ({ role: 'user' as const, content })),
      {
        id: 'm:1@x.y-z_',
        role: 'tool' as const,
        content: 'with id and time',
        createdAt: '2026-01-02T03:04:05.678+01:00',
      },
    ];
    await h.runtime.producer.enqueue({ threadId: 't-raw', context: { userId: 'u' }, kinds: ['memory'], messages });
    const turns = (await h.runtime.buffer.read('t-raw', null, 100, 0)).pending.map((e) => e.turn);
    expect(turns.map((t) => t.content)).toEqual(messages.map((m) => m.content));
    expect(turns.map((t) => t.role)).toEqual(messages.map((m) => m.role));
    expect(turns.every((t) => t.kinds?.join() === 'memory')).toBe(true);
    expect(turns.at(-1)).toMatchObject({ id: 'm:1@x.y-z_', createdAt: '2026-01-02T03:04:05.678+01:00' });
  });

  it('takes a context whatever the order of its keys', async () => {
    const msg = (content: string) => [{ role: 'user', content }];
    expect(
      (await post('/v1/threads/t-keys/turns', { context: { userId: 'u', orgId: 'o' }, messages: msg('one') })).status,
    ).toBe(202);
    expect(
      (await post('/v1/threads/t-keys/turns', { context: { orgId: 'o', userId: 'u' }, messages: msg('two') })).status,
    ).toBe(202);
    expect(
      (await post('/v1/threads/t-keys/turns', { context: { orgId: 'o', userId: 'v' }, messages: msg('three') })).status,
    ).toBe(409);
    expect((await h.runtime.buffer.read('t-keys', null, 100, 0)).pending).toHaveLength(2);
  });

  it("takes thread ids up to 128 characters over HTTP; a longer one gets the schema's 400", async () => {
    const body = { context: { userId: 'u' }, messages: [{ role: 'user', content: 'hi' }] };
    const longest = `t${'x'.repeat(127)}`;
    const ok = await post(`/v1/threads/${longest}/turns`, body);
    expect(ok.status).toBe(202);
    expect(await ok.json()).toEqual({ threadId: longest, accepted: 1, duplicates: 0 });
    const before = await redisKeys(redis, h.env.ENGRAM_PREFIX);
    const res = await post(`/v1/threads/${longest}y/turns`, body);
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: string }).error).toMatch(
      /invalid path: [\s\S]*must be 1 to 128 characters[\s\S]*threadId/,
    );
    expect(await redisKeys(redis, h.env.ENGRAM_PREFIX)).toEqual(before);
  });

  it('the SDK enqueues straight to Redis (it has no Postgres or model client) and validates the same way', async () => {
    const client = new EngramClient({ redisUrl: TEST_REDIS_URL, prefix: h.env.ENGRAM_PREFIX, debounceMs: 60_000 });
    try {
      await client.ready();
      await expect(client.enqueue({ threadId: 't-sdk', context: { userId: 'u' }, messages: [] })).rejects.toThrow(
        /invalid enqueue request/,
      );
      expect(
        await client.enqueue({
          threadId: 't-sdk',
          context: { userId: 'u' },
          messages: [{ role: 'user', content: 'hello' }],
        }),
      ).toMatchObject({ accepted: 1 });
      expect((await h.runtime.buffer.read('t-sdk', null, 100, 0)).pending).toHaveLength(1);
    } finally {
      await client.close();
    }
  });

  it('an SDK client opens only the reflection queue, and writes nothing of any other', async () => {
    const prefix = `engram-test-${uniqueName('sdkq')}`;
    // Given every setting a service publishes, it needs no service under its prefix.
    const client = new EngramClient({
      redisUrl: TEST_REDIS_URL,
      prefix,
      redisShards: TEST_REDIS_SHARDS,
      debounceMs: 60_000,
      maxWaitMs: 120_000,
      policy: 'enqueue',
      reflectionAttempts: 5,
      reflectionBackoffMs: 5_000,
      kinds: defaultKinds,
    });
    try {
      await client.enqueue({ threadId: 't', context: { userId: 'u' }, messages: [{ role: 'user', content: 'hi' }] });
      await client.close();
      // A queue's meta key lands once its connection is ready, after close had it been left open.
      await new Promise((r) => setTimeout(r, 200));
      const keys = await redisKeys(redis, prefix);
      // Every shard's reflection queue is `reflection` (shard 0) or `reflection-<n>`.
      const queueKey = /:reflection(-\d+)?:/;
      expect(keys.some((k) => queueKey.test(k))).toBe(true);
      expect(keys.filter((k) => !queueKey.test(k) && !k.includes(':thread:') && !k.endsWith(':ceilings'))).toEqual([]);
    } finally {
      await deleteKeys(TEST_REDIS_URL, prefix);
    }
  });

  it('the SDK refuses bad options by name, before it opens any connection', () => {
    // The same ceiling as ENQUEUE_TIMEOUT_MS: a stalled Redis must not hold a caller for hours.
    expect(() => new EngramClient({ redisUrl: TEST_REDIS_URL, enqueueTimeoutMs: 600_001 })).toThrow(
      /invalid engram client options[\s\S]*enqueueTimeoutMs/,
    );
    expect(() => new EngramClient({ redisUrl: TEST_REDIS_URL, debounceMs: -1 })).toThrow(
      /invalid engram client options[\s\S]*debounceMs/,
    );
  });

  it("fails fast with the SDK's UnavailableError, the driver's error as its cause, when Redis is down", async () => {
    // Nothing listens on port 1: the producer must reject, not queue the command and hang.
    const client = new EngramClient({ redisUrl: 'redis://127.0.0.1:1', log: createLogger({ level: 'silent' }) });
    try {
      const turn = { threadId: 't', context: { userId: 'u' }, messages: [{ role: 'user' as const, content: 'hi' }] };
      const err = await client.enqueue(turn).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(UnavailableError);
      expect(err).toBeInstanceOf(RetryableError);
      expect((err as Error).message).toMatch(/Redis is not reachable \(connect ECONNREFUSED 127\.0\.0\.1:1\)/);
      expect((err as Error).cause).toMatchObject({ code: 'ECONNREFUSED' });
      // Nothing is cached: the next call tries to connect again, and fails the same way.
      await expect(client.enqueue(turn)).rejects.toBeInstanceOf(UnavailableError);
    } finally {
      await client.close();
    }
  });
});
