import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineKind } from '../src/memory/kinds.js';
import { tables } from '../src/store/sql.js';
import { fakeEmbedding } from './fake-model/embedding.js';
import { readPrompt, type ChatHandler } from './fake-model/server.js';
import {
  reflectionCounts,
  redisKeys,
  runtimeBackends,
  startHarness,
  TEST_DATABASE_URL,
  TEST_DIMENSIONS,
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

  it('does not park a thread erased while its last reflection was failing', async () => {
    await say('u6-a', 'u6', 'hold refused zanzibar-failing');
    await waitFor(() => release !== null);
    expect((await post('/v1/erase', { context: { userId: 'u6' } })).status).toBe(200);
    release?.();
    release = null;
    // Refused for good after the erase: parked, it would count in the parked metric for ever,
    // with nothing left that a retry or a new reflection could commit to unpark it.
    await waitFor(async () => (await reflectionCounts(h.runtime, 'active')).active === 0);
    await waitFor(async () => ((await reflectionCounts(h.runtime, 'failed')).failed ?? 0) > 0);
    expect((await h.runtime.buffer.parked(100)).threads.map((t) => t.threadId)).not.toContain('u6-a');
    expect(await everything(h)).not.toContain('zanzibar-failing');
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

/**
 * A new user's first reflection committing while their erase runs: the erase listed the user's
 * namespaces before it claimed the thread's cursor, found none, then waited for the commit and
 * answered 200 over the memories it had just let in. Postgres only: the race needs a second
 * connection holding the cursor, as a reflection's commit in progress does.
 */
describe('erase racing a first reflection', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({ roles: ['api'], runtime: { kinds } });
  });
  afterAll(async () => h?.stop());

  it("erases the namespace a reflection creates while the erase waits for the thread's cursor", async () => {
    const thread = 'race-a';
    await h.runtime.producer.enqueue({
      threadId: thread,
      context: { userId: 'race' },
      messages: [{ role: 'user', content: 'zanzibar-race' }],
      debounceMs: 600_000,
    });
    const t = tables(h.env.DATABASE_SCHEMA);
    const waiting = async () =>
      Number(
        (
          await h.runtime.db.query<{ n: number }>(
            `select count(*)::int as n from pg_stat_activity where wait_event_type = 'Lock' and query like $1`,
            [`%${t.cursors}%`],
          )
        ).rows[0]?.n,
      );
    // The thread was reflected once before (its cursor row exists), into no namespace yet. A
    // reflection's commit of it is under way: a transaction holds the cursor row, and the commit
    // and the erase queue for it in that order.
    await h.runtime.db.query(`insert into ${t.cursors} (thread_id, cursor) values ($1, '0-1')`, [thread]);
    const holder = new pg.Client({ connectionString: TEST_DATABASE_URL });
    await holder.connect();
    try {
      await holder.query('begin');
      await holder.query(`select 1 from ${t.cursors} where thread_id = $1 for update`, [thread]);
      // The user's first memories, committed once the cursor is free.
      const vector = fakeEmbedding('zanzibar-race', TEST_DIMENSIONS);
      const committed = h.runtime.store.apply({
        actor: 'reflection:race',
        threadId: thread,
        once: { cursor: { threadId: thread, expected: '0-1', next: '1-0' } },
        writes: [
          {
            op: 'put',
            namespace: ['memories', 'race'],
            key: 'k',
            kind: 'memory',
            value: { content: 'zanzibar-race' },
            fields: [{ field: '$', text: 'zanzibar-race', vector }],
            ttl: null,
          },
        ],
      });
      await waitFor(async () => (await waiting()) === 1);
      const erased = h.runtime.eraser.erase({ context: { userId: 'race' } }, 'test');
      await waitFor(async () => (await waiting()) === 2);
      await holder.query('rollback');
      expect(await committed).toMatchObject({ status: 'applied' });
      expect(await erased).toMatchObject({ namespaces: 1, items: 1, threads: 1 });
    } finally {
      await holder.end();
    }
    expect(await everything(h)).not.toContain('zanzibar-race');
  });
});

describe("erase and export by context beside an org's kind", () => {
  // An org-wide kind whose namespace holds every user's: ["o1"] is a prefix of ["o1", "u2"].
  const orgKinds = [
    defineKind({
      name: 'org_fact',
      description: "A fact about the user's organisation",
      namespace: ['{orgId}'],
      schema: z.object({ content: z.string() }),
    }),
    defineKind({
      name: 'memory',
      description: 'A fact',
      namespace: ['{orgId}', '{userId}'],
      schema: z.object({ content: z.string() }),
    }),
    // Per session, under the user's: a user's erase takes every session of theirs.
    defineKind({
      name: 'episode',
      description: 'What happened in one session',
      namespace: ['{orgId}', '{userId}', '{sessionId}'],
      schema: z.object({ content: z.string() }),
    }),
  ];
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({ roles: ['api'], runtime: { kinds: orgKinds } });
  });
  afterAll(async () => h?.stop());

  const call = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(`${h.url}${path}`, {
      method,
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: res.status, text: await res.text() };
  };
  const put = (namespace: string[], content: string) =>
    call('PUT', '/v1/store/items', { namespace, key: 'k', value: { content } });

  it("covers the org's namespace and the user's, never another user's of the org", async () => {
    await put(['o1'], 'the org uses Postgres');
    await put(['o1', 'u1'], 'u1 is vegetarian');
    await put(['o1', 'u1', 'notes'], 'u1 stored this under their own namespace');
    await put(['o1', 'u1', 's9'], 'u1 asked about invoices in session s9');
    await put(['o1', 'u2'], 'u2 has a peanut allergy');
    const context = encodeURIComponent(JSON.stringify({ orgId: 'o1', userId: 'u1' }));

    const exported = await call('GET', `/v1/export?context=${context}`);
    expect(exported.status).toBe(200);
    expect(exported.text).toContain('the org uses Postgres');
    expect(exported.text).toContain('u1 is vegetarian');
    expect(exported.text).toContain('under their own namespace');
    expect(exported.text).toContain('session s9');
    expect(exported.text).not.toContain('peanut');

    const erased = await call('POST', '/v1/erase', { context: { orgId: 'o1', userId: 'u1' } });
    expect(erased.status).toBe(200);
    expect(JSON.parse(erased.text)).toMatchObject({ namespaces: 4, items: 4 });
    const left = await call('GET', `/v1/export?namespace=o1`);
    expect(left.text).toContain('peanut');
    expect(left.text).not.toContain('vegetarian');
    expect(left.text).not.toContain('session s9');
  });
});
