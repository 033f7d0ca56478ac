import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultKinds, defineKind, type MemoryKind, type MemoryKindInput } from '../src/memory/kinds.js';
import { reflectThread } from '../src/memory/reflect.js';
import { foodieModel } from './fake-model/foodie.js';
import { readPrompt, type ChatHandler } from './fake-model/server.js';
import { runtimeBackends, startHarness, type Harness } from './helpers/harness.js';
import { storeState } from './helpers/store-state.js';

/**
 * Facts that keep their time: a temporal kind's contradicted and deleted memories are
 * invalidated, not removed, dated by the turns that said so (their `createdAt`), not by when the
 * reflection ran; search and recall answer what held at a given time.
 */
describe.each(runtimeBackends)('facts that keep their time on $name', (backend) => {
  let h: Harness;
  const ns = ['memories', 'u1'];
  const january = '2026-01-10T18:00:00.000Z';
  const march = '2026-03-02T09:30:00.000Z';
  beforeAll(async () => {
    const temporal = defineKind({ ...(defaultKinds[0] as MemoryKind), temporal: true } as MemoryKindInput);
    h = await startHarness({ roles: ['api'], chat: foodieModel, env: backend.env, runtime: { kinds: [temporal] } });
    expect(h.runtime.db.backend).toBe(backend.name);
    const say = (threadId: string, content: string, createdAt: string) =>
      h.runtime.producer.enqueue({
        threadId,
        context: { userId: 'u1' },
        messages: [{ role: 'user', content, createdAt }],
      });
    await say('jan', 'I love ramen! I also like pasta.', january);
    expect(await reflectThread(h.runtime.reflectDeps(), 'jan', { actor: 'reflection:jan' })).toMatchObject({
      inserted: 2,
    });
    await say('mar', 'These days I like miso ramen, and I no longer like pasta.', march);
    expect(await reflectThread(h.runtime.reflectDeps(), 'mar', { actor: 'reflection:mar' })).toMatchObject({
      inserted: 1,
      updated: 0,
      deleted: 0,
      invalidated: 2,
    });
  });
  afterAll(async () => h?.stop());

  const search = async (asOf?: string) => {
    const q = new URLSearchParams({ query: 'what food does the user like', limit: '10' });
    for (const label of ns) q.append('namespace', label);
    if (asOf) q.set('asOf', asOf);
    const res = await fetch(`${h.url}/v1/memories/search?${q.toString()}`);
    expect(res.status).toBe(200);
    return (
      (await res.json()) as {
        memories: { key: string; value: { content: string }; validFrom: string; invalidAt: string | null }[];
      }
    ).memories;
  };

  it('leaves a fact scheduled to hold later out of what holds now, in every mode and in recall', async () => {
    const call = async (method: string, path: string, body: unknown) => {
      const res = await fetch(`${h.url}${path}`, {
        method,
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
      expect(res.status).toBe(200);
      return (await res.json()) as Record<string, { key: string }[]>;
    };
    const at = ['memories', 'u9'];
    await call('PUT', '/v1/store/items', { namespace: at, key: 'now', value: { content: 'User drinks tea' } });
    await call('PUT', '/v1/store/items', {
      namespace: at,
      key: 'later',
      value: { content: 'User will drink tea every day' },
      validFrom: '2099-01-01T00:00:00Z',
    });
    for (const mode of [undefined, 'vector', 'text', 'hybrid']) {
      const q = { namespacePrefix: at, ...(mode && { query: 'tea', mode }) };
      expect(
        (await call('POST', '/v1/store/items/search', q)).items?.map((i) => i.key),
        mode,
      ).toEqual(['now']);
    }
    const recalled = await call('POST', '/v1/recall', { context: { userId: 'u9' }, query: 'tea' });
    expect(recalled.memories?.map((m) => m.key)).toEqual(['now']);
    const then = await call('POST', '/v1/store/items/search', { namespacePrefix: at, asOf: '2099-06-01T00:00:00Z' });
    expect(then.items?.map((i) => i.key).sort()).toEqual(['later', 'now']);
  });

  it("keeps a deleted or rewritten fact, dated by the turns' own time, out of what holds now", async () => {
    const now = await search();
    expect(now.map((m) => m.value.content)).toEqual(['User loves ramen, especially miso ramen']);
    expect(now[0]!.validFrom).toBe(march);

    const before = await search('2026-02-01T00:00:00Z');
    expect(before.map((m) => m.value.content).sort()).toEqual(['User likes pasta', 'User loves ramen']);
    // Pasta was liked from the first conversation until the second.
    expect(before.find((m) => m.value.content === 'User likes pasta')).toMatchObject({
      validFrom: january,
      invalidAt: march,
    });
    expect(await search('2025-12-31T00:00:00Z')).toEqual([]);

    const history = (await storeState(h.runtime)).history.map((r) => [r.op, r.after?.content ?? null, r.actor]);
    expect(history).toEqual(
      expect.arrayContaining([
        ['invalidate', 'User likes pasta', 'reflection:mar'],
        ['invalidate', 'User loves ramen', 'reflection:mar'],
        ['insert', 'User loves ramen, especially miso ramen', 'reflection:mar'],
      ]),
    );
    // And over HTTP, where a history holding an invalidation answered 500.
    const pasta = before.find((m) => m.value.content === 'User likes pasta');
    const res = await fetch(
      `${h.url}/v1/store/items/history?namespace=memories&namespace=u1&key=${encodeURIComponent(pasta!.key)}`,
    );
    expect(res.status).toBe(200);
    const rows = ((await res.json()) as { history: { op: string; actor: string }[] }).history;
    expect(rows.map((r) => [r.op, r.actor])).toEqual([
      ['insert', 'reflection:jan'],
      ['invalidate', 'reflection:mar'],
    ]);
  });

  it('recall takes asOf; the next reflection is shown only what holds now', async () => {
    const recall = async (body: Record<string, unknown>) =>
      (await (
        await fetch(`${h.url}/v1/recall`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ context: { userId: 'u1' }, query: 'food', ...body }),
        })
      ).json()) as { memories: { value: { content: string } }[] };
    expect((await recall({})).memories.map((m) => m.value.content)).toEqual([
      'User loves ramen, especially miso ramen',
    ]);
    expect((await recall({ asOf: '2026-02-01T00:00:00Z' })).memories.map((m) => m.value.content).sort()).toEqual([
      'User likes pasta',
      'User loves ramen',
    ]);

    await h.runtime.producer.enqueue({
      threadId: 'apr',
      context: { userId: 'u1' },
      messages: [{ role: 'user', content: 'I had ramen again today' }],
    });
    await reflectThread(h.runtime.reflectDeps(), 'apr', { actor: 'reflection:apr' });
    const shown = readPrompt(h.model.chatRequests.at(-1)!).existing.map((m) => m.document.content);
    expect(shown).toEqual(['User loves ramen, especially miso ramen']);
  });

  it('dates each memory of one batch by the turn that said it, not by the batch', async () => {
    // A backfill (or a maxWait batch): one reflection reads turns years apart.
    const y2020 = '2020-01-01T00:00:00.000Z';
    const y2024 = '2024-01-01T00:00:00.000Z';
    const y2025 = '2025-03-01T00:00:00.000Z';
    const y2026 = '2026-02-01T00:00:00.000Z';
    // The model numbers what it reads: each call names the turn it comes from (the second
    // batch's tea has none, and falls back to the batch's last turn).
    const historian: ChatHandler = (request) => {
      const { turns, existing } = readPrompt(request);
      const said = (text: string) => turns.find((t) => t.content.includes(text));
      const job = existing.find((m) => String(m.document.content).includes('Initech'));
      const calls = [
        ...(said('Initech') && !job
          ? [
              {
                name: 'insert_memory',
                arguments: { content: 'User works at Initech', said_in_turn: said('Initech')!.turn },
              },
            ]
          : []),
        ...(said('dog')
          ? [{ name: 'insert_memory', arguments: { content: 'User adopted a dog', said_in_turn: said('dog')!.turn } }]
          : []),
        ...(said('left') && job
          ? [{ name: 'delete_memory', arguments: { id: job.id, said_in_turn: said('left')!.turn } }]
          : []),
        ...(said('tea') ? [{ name: 'insert_memory', arguments: { content: 'User drinks tea' } }] : []),
      ];
      return { toolCalls: calls };
    };
    const tell = async (threadId: string, messages: [string, string][]) => {
      await h.runtime.producer.enqueue({
        threadId,
        context: { userId: 'u2' },
        messages: messages.map(([content, createdAt]) => ({ role: 'user' as const, content, createdAt })),
      });
      return reflectThread(h.runtime.reflectDeps(), threadId, { actor: `reflection:${threadId}` });
    };
    h.model.chat = historian;
    let backfill: ReturnType<typeof readPrompt> | undefined;
    try {
      expect(
        await tell('backfill', [
          ['I work at Initech', y2020],
          ['I adopted a dog', y2024],
        ]),
      ).toMatchObject({ inserted: 2 });
      backfill = readPrompt(h.model.chatRequests.at(-1)!);
      expect(
        await tell('later', [
          ['I left Initech', y2025],
          ['I drink tea now', y2026],
        ]),
      ).toMatchObject({ inserted: 1, invalidated: 1 });
    } finally {
      h.model.chat = foodieModel;
    }

    const query = (q: string, asOf?: string) => {
      const params = new URLSearchParams({ query: q, limit: '10' });
      for (const label of ['memories', 'u2']) params.append('namespace', label);
      if (asOf) params.set('asOf', asOf);
      return params;
    };
    const search = async (asOf?: string) =>
      (
        (await (await fetch(`${h.url}/v1/memories/search?${query('work', asOf).toString()}`)).json()) as {
          memories: { value: { content: string }; validFrom: string; invalidAt: string | null }[];
        }
      ).memories;
    const dated = (await search('2025-01-01T00:00:00Z')).map((m) => [m.value.content, m.validFrom, m.invalidAt]);
    expect(dated.sort()).toEqual([
      ['User adopted a dog', y2024, null],
      ['User works at Initech', y2020, y2025],
    ]);
    expect((await search('2022-06-01T00:00:00Z')).map((m) => m.value.content)).toEqual(['User works at Initech']);
    expect((await search()).map((m) => [m.value.content, m.validFrom]).sort()).toEqual([
      ['User adopted a dog', y2024],
      ['User drinks tea', y2026],
    ]);

    const recall = await fetch(`${h.url}/v1/recall`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ context: { userId: 'u2' }, query: 'where do I work', asOf: '2022-06-01T00:00:00Z' }),
    });
    const recalled = (await recall.json()) as { memories: { value: { content: string } }[] };
    expect(recalled.memories.map((m) => m.value.content)).toEqual(['User works at Initech']);
    // What the model read: the new turns numbered, with their time.
    expect(backfill?.turns).toMatchObject([
      { turn: 1, at: y2020 },
      { turn: 2, at: y2024 },
    ]);
  });
});
