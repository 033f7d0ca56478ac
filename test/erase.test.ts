import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineKind } from '../src/memory/kinds.js';
import { tables } from '../src/store/sql.js';
import { readPrompt, type ChatHandler } from './fake-model/server.js';
import {
  reflectionCounts,
  redisKeys,
  runtimeBackends,
  startHarness,
  testRedis,
  waitFor,
  type Harness,
} from './helpers/harness.js';

const kinds = [
  defineKind({
    name: 'memory',
    description: 'A fact',
    namespace: ['memories', '{userId}'],
    schema: z.object({ content: z.string() }),
  }),
  defineKind({
    name: 'user_profile',
    description: 'Stable facts',
    namespace: ['profiles', '{userId}'],
    mode: 'profile',
    schema: z.object({ secret: z.string() }).partial(),
  }),
];

/** Every turn becomes a memory and the profile's `secret` (so erased text sits in both). */
const remember: ChatHandler = (req) => ({
  toolCalls: readPrompt(req).turns.flatMap((t) => [
    { name: 'insert_memory', arguments: { content: t.content } },
    { name: 'patch_user_profile', arguments: { secret: t.content } },
  ]),
});

/** Every text a table row or a Redis key under the prefix holds, as one string to search. */
async function everything(h: Harness): Promise<string> {
  const t = tables(h.env.DATABASE_SCHEMA);
  const rows: unknown[] = [];
  for (const table of Object.entries(t).filter(([name]) => !['schema', 'annIndex'].includes(name))) {
    rows.push((await h.runtime.db.query(`select * from ${table[1]}`)).rows);
  }
  const redis = testRedis();
  try {
    for (const key of await redisKeys(redis, h.env.ENGRAM_PREFIX)) {
      const type = await redis.type(key);
      if (type === 'string') rows.push(await redis.get(key));
      else if (type === 'hash') rows.push(await redis.hgetall(key));
      else if (type === 'list') rows.push(await redis.lrange(key, 0, -1));
      else if (type === 'set') rows.push(await redis.smembers(key));
      else if (type === 'zset') rows.push(await redis.zrange(key, 0, -1));
      else if (type === 'stream') rows.push(await redis.xrange(key, '-', '+'));
    }
  } finally {
    redis.disconnect();
  }
  return JSON.stringify(rows);
}

describe.each(runtimeBackends)('erase on $name', (backend) => {
  let h: Harness;
  let release: (() => void) | null = null;
  beforeAll(async () => {
    h = await startHarness({
      roles: ['api', 'reflection'],
      env: { DEBOUNCE_MS: '100', ...backend.env },
      runtime: { kinds },
      chat: async (req, index) => {
        // A reflection of a turn saying "hold" waits until the test lets it go.
        if (readPrompt(req).turns.some((t) => t.content.includes('hold')))
          await new Promise<void>((r) => (release = r));
        // A request the model refuses for good: the thread is parked at once.
        if (readPrompt(req).turns.some((t) => t.content.includes('refused')))
          return { status: 400, error: 'this request is refused' };
        return remember(req, index);
      },
    });
  });
  afterAll(async () => {
    release?.();
    await h?.stop();
  });

  const post = async (path: string, body: unknown) => {
    const res = await fetch(`${h.url}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    return { status: res.status, body: (await res.json()) as Record<string, any> };
  };
  const say = (threadId: string, userId: string, content: string, debounceMs?: number) =>
    post(`/v1/threads/${threadId}/turns`, {
      context: { userId },
      messages: [{ id: `${threadId}-${content.length}`, role: 'user', content }],
      ...(debounceMs ? { debounceMs } : {}),
    });
  const reflected = (threadId: string) => waitFor(async () => (await h.runtime.store.cursor(threadId)) !== null);

  it("leaves no row and no Redis key holding the user's text, and keeps others' and a content-free audit", async () => {
    await say('u1-a', 'u1', 'zanzibar-reflected secret');
    await say('u2-a', 'u2', 'other user keeps this');
    await reflected('u1-a');
    await reflected('u2-a');
    // Pending, not reflected yet: buffered turns and a delayed job.
    await say('u1-b', 'u1', 'zanzibar-pending secret', 60_000);
    await post('/v1/store/items/search', { namespacePrefix: [] });
    const put = await fetch(`${h.url}/v1/store/items`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        namespace: ['memories', 'u1', 'notes'],
        key: 'n',
        value: { content: 'zanzibar-put secret' },
      }),
    });
    expect(put.status).toBe(200);
    expect(await everything(h)).toContain('zanzibar');

    const erased = await post('/v1/erase', { context: { userId: 'u1' } });
    expect(erased.status).toBe(200);
    expect(erased.body).toMatchObject({
      threads: 2,
      prefixes: [
        ['memories', 'u1'],
        ['profiles', 'u1'],
      ],
    });
    expect(erased.body.items).toBe(3); // the memory, the profile, the note under the prefix
    expect(erased.body.jobs).toBeGreaterThanOrEqual(2); // u1-a's completed job, u1-b's delayed one

    const left = await everything(h);
    expect(left).not.toContain('zanzibar');
    expect(left).toContain('other user keeps this');
    const audit = await h.runtime.db.query<{ actor: string; scope: unknown; counts: Record<string, number> }>(
      `select actor, scope, counts from ${tables(h.env.DATABASE_SCHEMA).erasures}`,
    );
    expect(audit.rows).toEqual([
      { actor: 'api', scope: { context: { userId: 'u1' } }, counts: expect.objectContaining({ items: 3, threads: 2 }) },
    ]);

    // The user may come back: new turns form new memories as usual.
    await say('u1-c', 'u1', 'a new start');
    await reflected('u1-c');
    expect((await post('/v1/recall', { context: { userId: 'u1' }, query: 'start' })).body.memories).toHaveLength(1);
  });

  it('unparks an erased thread, so the parked count an operator alerts on comes down', async () => {
    await say('u5-a', 'u5', 'refused zanzibar');
    const parked = async () => (await h.runtime.buffer.parked(100)).threads.map((t) => t.threadId);
    await waitFor(async () => (await parked()).includes('u5-a'));
    expect((await post('/v1/erase', { context: { userId: 'u5' } })).status).toBe(200);
    expect(await parked()).not.toContain('u5-a');
  });

  it('a reflection in flight when the erase runs writes nothing back', async () => {
    await say('u3-a', 'u3', 'hold zanzibar-in-flight');
    await waitFor(() => release !== null);
    expect((await post('/v1/erase', { context: { userId: 'u3' } })).status).toBe(200);
    const before = h.model.chatRequests.length;
    release?.();
    release = null;
    // The job ends (its commit refused by the erase epoch, then nothing left to read).
    await waitFor(async () => (await reflectionCounts(h.runtime, 'active')).active === 0);
    await new Promise((r) => setTimeout(r, 300));
    expect(h.model.chatRequests.length).toBe(before);
    expect(await everything(h)).not.toContain('zanzibar-in-flight');
    expect((await post('/v1/recall', { context: { userId: 'u3' }, query: 'zanzibar' })).body.memories).toEqual([]);
  });

  it('by namespace prefix; bad scopes are 400s that erase nothing', async () => {
    const put = (namespace: string[]) =>
      fetch(`${h.url}/v1/store/items`, {
        method: 'PUT',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ namespace, key: 'k', value: { content: 'x' } }),
      });
    await put(['team', 'a', 'notes']);
    await put(['team', 'ab']);
    const erased = await post('/v1/erase', { namespacePrefix: ['team', 'a'] });
    expect(erased.body).toMatchObject({ items: 1, threads: 0 });
    expect((await post('/v1/store/items/search', { namespacePrefix: ['team'] })).body.items).toHaveLength(1);

    expect((await post('/v1/erase', { namespacePrefix: [] })).status).toBe(400);
    expect((await post('/v1/erase', {})).status).toBe(400);
    expect((await post('/v1/erase', { context: { orgId: 'o1' } })).body.error).toMatch(/fills no memory kind/);
  });
});

describe('erase under API keys', () => {
  const keys = { acme: 'acme-key-0123456789', globex: 'globex-key-0123456789' };
  const tenantKinds = [
    defineKind({
      name: 'memory',
      description: 'A fact',
      namespace: ['{tenant}', 'memories', '{userId}'],
      schema: z.object({ content: z.string() }),
    }),
  ];
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({
      roles: ['api'],
      env: { API_KEYS: `acme:${keys.acme},globex:${keys.globex}`, ADMIN_PASSWORD: 'board-password' },
      runtime: { kinds: tenantKinds },
    });
  });
  afterAll(async () => h?.stop());

  const call = async (method: string, path: string, key: string, body: unknown) => {
    const res = await fetch(`${h.url}${path}`, {
      method,
      headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
      body: JSON.stringify(body),
    });
    return { status: res.status, body: (await res.json()) as Record<string, any> };
  };

  it("stays inside the key's tenant", async () => {
    for (const [tenant, key] of Object.entries(keys)) {
      const put = await call('PUT', '/v1/store/items', key, {
        namespace: [tenant, 'memories', 'u1'],
        key: 'k',
        value: { content: `${tenant} fact` },
      });
      expect(put.status).toBe(200);
    }
    expect((await call('POST', '/v1/erase', keys.acme, { namespacePrefix: ['globex', 'memories'] })).status).toBe(403);
    expect((await call('POST', '/v1/erase', keys.acme, { context: { userId: 'u1', tenant: 'globex' } })).status).toBe(
      403,
    );
    expect((await call('POST', '/v1/erase', keys.acme, { context: { userId: 'u1' } })).body).toMatchObject({
      items: 1,
    });
    const search = (key: string) => call('POST', '/v1/store/items/search', key, {});
    expect((await search(keys.acme)).body.items).toEqual([]);
    expect((await search(keys.globex)).body.items).toHaveLength(1);
  });
});
