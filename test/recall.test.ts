import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineKind } from '../src/memory/kinds.js';
import { estimateTokens } from '../src/memory/recall-prompt.js';
import { tables } from '../src/store/sql.js';
import { startHarness, type Harness } from './helpers/harness.js';

const kinds = (tenant: boolean) => {
  const root = tenant ? ['{tenant}'] : [];
  return [
    defineKind({
      name: 'memory',
      description: 'A fact about the user',
      namespace: [...root, 'memories', '{userId}'],
      schema: z.object({ content: z.string() }),
    }),
    defineKind({
      name: 'episode',
      description: 'Something that happened',
      namespace: [...root, 'episodes', '{userId}'],
      schema: z.object({ content: z.string() }),
    }),
    defineKind({
      name: 'user_profile',
      description: 'Stable facts',
      namespace: [...root, 'profiles', '{userId}'],
      mode: 'profile',
      schema: z.object({ name: z.string(), city: z.string() }).partial(),
    }),
  ];
};

async function call(h: Harness, path: string, body: unknown, key?: string) {
  const res = await fetch(`${h.url}${path}`, {
    method: path.includes('/store/items') && !path.endsWith('search') ? 'PUT' : 'POST',
    headers: { 'content-type': 'application/json', ...(key ? { authorization: `Bearer ${key}` } : {}) },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as Record<string, any> };
}

describe('recall', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({ roles: ['api'], runtime: { kinds: kinds(false) } });
    const put = (namespace: string[], key: string, kind: string, value: Record<string, unknown>) =>
      call(h, '/v1/store/items', { namespace, key, kind, value });
    await put(['profiles', 'u1'], 'profile:user_profile', 'user_profile', { name: 'Ana', city: 'Lisbon' });
    await put(['memories', 'u1'], 'm1', 'memory', { content: 'User loves ramen' });
    await put(['memories', 'u1'], 'm2', 'memory', { content: 'User plays tennis on Sundays' });
    await put(['memories', 'u1'], 'm3', 'memory', { content: 'User is allergic to peanuts' });
    await put(['episodes', 'u1'], 'e1', 'episode', { content: 'User cooked ramen with a friend <3 & laughed' });
    // The same fact kept by two kinds is shown once.
    await put(['episodes', 'u1'], 'e2', 'episode', { content: 'User loves ramen' });
    // Not a configured kind of these namespaces: recall leaves it out.
    await put(['memories', 'u1'], 'note', 'note', { content: 'ramen ramen ramen' });
    // A configured kind, outside its own namespace: not that kind's memory, whatever is asked.
    await put(['memories', 'u1'], 'stray', 'episode', { content: 'User had ramen night' });
    await put(['memories', 'u2'], 'm1', 'memory', { content: 'User loves ramen too' });
  });
  afterAll(async () => h?.stop());

  it("returns the user's profiles and relevant memories across the kinds' namespaces, and a prompt block", async () => {
    const r = await call(h, '/v1/recall', { context: { userId: 'u1' }, query: 'what food does she like? ramen' });
    expect(r.status).toBe(200);
    expect(r.body.profiles).toEqual([
      expect.objectContaining({
        kind: 'user_profile',
        namespace: ['profiles', 'u1'],
        value: { name: 'Ana', city: 'Lisbon' },
      }),
    ]);
    const contents = r.body.memories.map((m: any) => m.value.content);
    expect(contents.slice(0, 2).sort()).toEqual(['User cooked ramen with a friend <3 & laughed', 'User loves ramen']);
    expect(contents.filter((c: string) => c === 'User loves ramen')).toHaveLength(1);
    expect(contents).not.toContain('ramen ramen ramen');
    expect(contents).not.toContain('User loves ramen too');
    expect(r.body.memories.every((m: any) => ['memory', 'episode'].includes(m.kind))).toBe(true);

    const lines = (r.body.prompt as string).split('\n');
    expect(lines[0]).toBe('<memories>');
    // jsonb keeps keys in its own order (shorter first).
    expect(lines[1]).toBe('<profile kind="user_profile">{"city":"Lisbon","name":"Ana"}</profile>');
    expect(lines).toContain(
      `<memory kind="episode" updated="${new Date().toISOString().slice(0, 10)}">User cooked ramen with a friend &lt;3 &amp; laughed</memory>`,
    );
    expect(lines.at(-1)).toBe('</memories>');
    expect(r.body.tokens).toBe(estimateTokens(r.body.prompt));
  });

  it('ranks by text alone when the query cannot be embedded, and says so, rather than failing the turn', async () => {
    h.model.failEmbeddings = 100;
    try {
      const r = await call(h, '/v1/recall', { context: { userId: 'u1' }, query: 'ramen' });
      expect(r.status).toBe(200);
      expect(r.body.degraded).toEqual({ ranking: 'text', reason: expect.stringMatching(/embedding model .*500/) });
      expect(r.body.profiles).toHaveLength(1);
      expect(r.body.memories.map((m: any) => m.value.content)).toContain('User loves ramen');
      expect(await h.runtime.metrics.registry.metrics()).toMatch(
        /^engram_search_duration_seconds_count\{op="recall",outcome="degraded"\} 1$/m,
      );
      // Asked for vectors only, or a search, it fails as before: the caller chose the ranking.
      expect((await call(h, '/v1/recall', { context: { userId: 'u1' }, query: 'ramen', mode: 'vector' })).status).toBe(
        503,
      );
      const search = await fetch(`${h.url}/v1/memories/search?namespace=memories&namespace=u1&query=ramen`);
      expect(search.status).toBe(503);
    } finally {
      h.model.failEmbeddings = 0;
    }
    const healthy = await call(h, '/v1/recall', { context: { userId: 'u1' }, query: 'ramen' });
    expect(healthy.status).toBe(200);
    expect(healthy.body).not.toHaveProperty('degraded');
  });

  it('takes the latest messages instead of a query, and cuts to limit and the token budget', async () => {
    const messages = [
      { role: 'assistant', content: 'How can I help?' },
      { role: 'user', content: 'Any sports this weekend? Maybe tennis' },
    ];
    const all = await call(h, '/v1/recall', { context: { userId: 'u1' }, messages, limit: 10 });
    expect(all.body.memories[0].value.content).toBe('User plays tennis on Sundays');

    const one = await call(h, '/v1/recall', { context: { userId: 'u1' }, messages, limit: 1 });
    expect(one.body.memories).toHaveLength(1);

    const budget = 40;
    const cut = await call(h, '/v1/recall', { context: { userId: 'u1' }, messages, tokenBudget: budget });
    expect(cut.body.tokens).toBeLessThanOrEqual(budget);
    expect(cut.body.memories.length).toBeLessThan(all.body.memories.length);
    expect(cut.body.memories.map((m: any) => m.key)).toEqual(
      all.body.memories.slice(0, cut.body.memories.length).map((m: any) => m.key),
    );
    // The answer says how many the budget left out; one that left none out says nothing.
    expect(cut.body.leftOut).toBe(all.body.memories.length - cut.body.memories.length);
    expect(all.body).not.toHaveProperty('leftOut');
  });

  it('returns up to the limit asked, past the 50 candidates it ranks by default', async () => {
    const ops = Array.from({ length: 80 }, (_, i) => ({
      op: 'put',
      namespace: ['memories', 'u80'],
      key: `k${i}`,
      kind: 'memory',
      value: { content: `User drinks tea number ${i}` },
    }));
    expect((await call(h, '/v1/store/batch', { ops })).status).toBe(200);
    const many = await call(h, '/v1/recall', { context: { userId: 'u80' }, query: 'tea', limit: 100 });
    expect(many.body.memories).toHaveLength(80);
  });

  it('weighs newer memories up when asked to, by a half-life', async () => {
    const context = { userId: 'u3' };
    await call(h, '/v1/store/items', {
      namespace: ['memories', 'u3'],
      key: 'old',
      kind: 'memory',
      value: { content: 'User loves ramen noodles' },
    });
    await call(h, '/v1/store/items', {
      namespace: ['memories', 'u3'],
      key: 'new',
      kind: 'memory',
      value: { content: 'User tried a ramen place' },
    });
    // The better match of the two was last changed thirty days ago.
    await h.runtime.db.query(
      `update ${tables(h.runtime.store.schema).memories} set updated_at = now() - interval '30 days' where namespace = '{memories,u3}' and key = 'old'`,
    );
    const ranked = async (recency?: unknown) =>
      (await call(h, '/v1/recall', { context, query: 'ramen noodles', kinds: ['memory'], recency })).body.memories.map(
        (m: any) => m.key,
      );
    expect(await ranked()).toEqual(['old', 'new']);
    // A day's half-life at full weight: thirty days scale its score by 2^-30.
    expect(await ranked({ halfLifeMs: 86_400_000, weight: 1 })).toEqual(['new', 'old']);
    // Weight 0 is no weighting. Fused scores of neighbours differ by under 2 % (1/61 + 1/61
    // against 1/62 + 1/62): a half-life of ten years scales the old one's by 0.3 %, of a year by 3 %.
    expect(await ranked({ halfLifeMs: 86_400_000, weight: 0 })).toEqual(['old', 'new']);
    expect(await ranked({ halfLifeMs: 3_650 * 86_400_000, weight: 0.5 })).toEqual(['old', 'new']);
    expect(await ranked({ halfLifeMs: 365 * 86_400_000, weight: 0.5 })).toEqual(['new', 'old']);
    const bad = await call(h, '/v1/recall', { context, query: 'ramen', recency: { halfLifeMs: 0, weight: 2 } });
    expect(bad.status).toBe(400);
    expect(JSON.stringify(bad.body.details)).toMatch(/recency/);
  });

  it('by kind and mode; a new user recalls nothing; bad input is a 400 naming the problem', async () => {
    const all = await call(h, '/v1/recall', { context: { userId: 'u1' }, query: 'ramen', limit: 100 });
    expect(all.body.memories.map((m: any) => m.key)).not.toContain('stray');
    const episodes = await call(h, '/v1/recall', { context: { userId: 'u1' }, query: 'ramen', kinds: ['episode'] });
    expect(episodes.body.profiles).toEqual([]);
    expect(episodes.body.memories.every((m: any) => m.kind === 'episode')).toBe(true);
    const text = await call(h, '/v1/recall', { context: { userId: 'u1' }, query: 'peanuts', mode: 'text' });
    expect(text.body.memories.map((m: any) => m.key)).toEqual(['m3']);

    expect(await call(h, '/v1/recall', { context: { userId: 'nobody' }, query: 'ramen' })).toMatchObject({
      status: 200,
      body: { profiles: [], memories: [], prompt: '', tokens: 0 },
    });
    const missing = await call(h, '/v1/recall', { context: { user: 'u1' }, query: 'ramen' });
    expect(missing.status).toBe(400);
    expect(missing.body.error).toMatch(/context is missing "userId"/);
    const both = await call(h, '/v1/recall', {
      context: { userId: 'u1' },
      query: 'x',
      messages: [{ role: 'user', content: 'x' }],
    });
    expect(both.status).toBe(400);
    expect(
      (await call(h, '/v1/recall', { context: { userId: 'u1' }, query: 'x', kinds: ['nope'] })).body.error,
    ).toMatch(/unknown memory kind/);
  });
});

describe('recall under API keys', () => {
  const keys = { acme: 'acme-key-0123456789', globex: 'globex-key-0123456789' };
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({
      roles: ['api'],
      env: { API_KEYS: `acme:${keys.acme},globex:${keys.globex}`, ADMIN_PASSWORD: 'board-password' },
      runtime: { kinds: kinds(true) },
    });
    await call(
      h,
      '/v1/store/items',
      { namespace: ['acme', 'memories', 'u1'], key: 'm', value: { content: 'acme ramen' } },
      keys.acme,
    );
    await call(
      h,
      '/v1/store/items',
      { namespace: ['globex', 'memories', 'u1'], key: 'm', value: { content: 'globex ramen' } },
      keys.globex,
    );
  });
  afterAll(async () => h?.stop());

  it("stays inside the key's tenant, whatever the context says", async () => {
    const acme = await call(h, '/v1/recall', { context: { userId: 'u1' }, query: 'ramen' }, keys.acme);
    expect(acme.body.memories.map((m: any) => m.value.content)).toEqual(['acme ramen']);
    const spoofed = await call(
      h,
      '/v1/recall',
      { context: { userId: 'u1', tenant: 'globex' }, query: 'ramen' },
      keys.acme,
    );
    expect(spoofed.status).toBe(403);
    expect((await call(h, '/v1/recall', { context: { userId: 'u1' }, query: 'ramen' })).status).toBe(401);
  });
});
