import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineKind } from '../src/memory/kinds.js';
import type { UsageRecord } from '../src/observability/usage.js';
import { reflectThread } from '../src/memory/reflect.js';
import { foodieModel } from './fake-model/foodie.js';
import { readPrompt, type ChatHandler, type ChatRequest } from './fake-model/server.js';
import { startHarness, waitFor, type Harness } from './helpers/harness.js';
import { memoryValues, storeState } from './helpers/store-state.js';

/**
 * Memory formation against real Postgres + pgvector and the Redis thread buffer, with the fake
 * model over HTTP: the seeds' conversations, reflected by calling the store manager directly
 * (no worker runs, so each test decides exactly when a reflection happens).
 */
const reflect = (h: Harness, threadId: string, actor = `test:${threadId}`) =>
  reflectThread(h.runtime.reflectDeps(), threadId, { actor });
const say = (h: Harness, threadId: string, userId: string, ...contents: string[]) =>
  h.runtime.producer.enqueue({
    threadId,
    context: { userId },
    messages: contents.map((content, i) => ({ role: i % 2 ? 'assistant' : 'user', content })),
  });

describe('formation: ramen and pasta (collection of plain memories)', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({ roles: [], chat: foodieModel });
  });
  afterAll(async () => h?.stop());

  it('inserts two facts, then updates one and deletes the other, with history', async () => {
    const ns = ['memories', 'u1'];
    await say(h, 'conv-1', 'u1', 'I love ramen! I also like pasta.', 'Noted: ramen and pasta.');
    const first = await reflect(h, 'conv-1');
    expect(first).toMatchObject({
      status: 'applied',
      turns: 2,
      inserted: 2,
      updated: 0,
      deleted: 0,
      modelCalls: 1,
      restarts: 0,
      namespaces: [ns],
    });
    expect(first.usage.promptTokens).toBeGreaterThan(0);
    expect((await memoryValues(h.runtime, ns)).map((m) => m.value.content)).toEqual([
      'User likes pasta',
      'User loves ramen',
    ]);

    await say(h, 'conv-2', 'u1', 'These days I like miso ramen, and I no longer like pasta.');
    const second = await reflect(h, 'conv-2');
    expect(second).toMatchObject({ status: 'applied', turns: 1, inserted: 0, updated: 1, deleted: 1, modelCalls: 1 });
    expect((await memoryValues(h.runtime, ns)).map((m) => m.value.content)).toEqual([
      'User loves ramen, especially miso ramen',
    ]);

    // The second prompt showed both memories under aliases, and no raw key.
    const state = await storeState(h.runtime);
    const prompt = h.model.chatRequests[1] as ChatRequest;
    const shown = readPrompt(prompt).existing;
    expect(shown.map((m) => m.id)).toEqual(['m1', 'm2']);
    expect(shown.map((m) => m.document.content).sort()).toEqual(['User likes pasta', 'User loves ramen']);
    for (const row of state.history) expect(JSON.stringify(prompt)).not.toContain(row.key);
    expect(state.history.map((r) => [r.op, r.before?.content ?? null, r.after?.content ?? null, r.actor])).toEqual([
      ['insert', null, 'User loves ramen', 'test:conv-1'],
      ['insert', null, 'User likes pasta', 'test:conv-1'],
      ['update', 'User loves ramen', 'User loves ramen, especially miso ramen', 'test:conv-2'],
      ['delete', 'User likes pasta', null, 'test:conv-2'],
    ]);
    // One embedding call for the queries and one for the changed documents, per reflection.
    expect(h.model.embeddingRequests).toBe(4);
  });
});

describe('formation: token usage', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({ roles: [], chat: foodieModel });
  });
  afterAll(async () => h?.stop());

  it('records every model request with the job, thread and namespaces it served', async () => {
    const records: UsageRecord[] = [];
    await say(h, 'usage-1', 'u7', 'I love ramen! I also like pasta.');
    const outcome = await reflectThread(
      { ...h.runtime.reflectDeps(), usage: { record: (r) => records.push(r) } },
      'usage-1',
      { actor: 'reflection:job-42' },
    );
    expect(records.map((r) => r.purpose)).toEqual(['embed-queries', 'extract', 'embed-documents']);
    for (const r of records)
      expect(r).toMatchObject({ actor: 'reflection:job-42', threadId: 'usage-1', namespaces: [['memories', 'u7']] });
    const extract = records.find((r) => r.purpose === 'extract')!;
    expect(extract.promptTokens).toBeGreaterThan(0);
    expect(outcome.usage).toEqual({ promptTokens: extract.promptTokens, completionTokens: extract.completionTokens });
    expect(outcome.embeddingTokens).toBe(
      records.filter((r) => r.purpose !== 'extract').reduce((n, r) => n + r.promptTokens, 0),
    );
  });
});

/** The seeds' PostgreSQL article: a developer's tech interests, and a profile patched over time. */
const techModel: ChatHandler = (request) => {
  const { profiles, existing, turns } = readPrompt(request);
  const said = turns.map((t) => t.content).join(' ');
  if (said.includes('five years')) {
    return {
      toolCalls: [
        { name: 'patch_user_profile', arguments: { name: 'Ana', city: 'Lisbon' } },
        {
          name: 'insert_tech_interest',
          arguments: {
            technology: 'PostgreSQL',
            interest_level: 'high',
            proficiency: 'advanced',
            context: 'Five years of analytics work',
          },
        },
        {
          name: 'insert_tech_interest',
          arguments: {
            technology: 'pgvector',
            interest_level: 'high',
            proficiency: 'beginner',
            context: 'Just started, for vector search',
          },
        },
      ],
    };
  }
  if (said.includes('HNSW')) {
    const pgvector = existing.find((m) => m.document.technology === 'pgvector');
    if (!pgvector || !profiles.user_profile) return { content: 'no changes' };
    return {
      toolCalls: [
        { name: 'patch_user_profile', arguments: { city: 'Porto', diet: 'vegetarian' } },
        {
          name: 'update_memory',
          arguments: {
            id: pgvector.id,
            document: {
              ...pgvector.document,
              proficiency: 'intermediate',
              context: 'Built an HNSW index and tuned ef_search',
            },
          },
        },
      ],
    };
  }
  return { content: 'no changes' };
};

describe('formation: kinds from a file (tech interests and a profile)', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({
      roles: [],
      chat: techModel,
      env: { ENGRAM_KINDS_FILE: new URL('./fixtures/kinds.yaml', import.meta.url).pathname },
    });
  });
  afterAll(async () => h?.stop());

  it('records tech interests, then patches the profile and updates one interest in a later conversation', async () => {
    const techNs = ['tech', 'ana'];
    const profileNs = ['profiles', 'ana'];
    await say(
      h,
      'talk-1',
      'ana',
      "Hi, I'm Ana from Lisbon. I've used PostgreSQL for five years for analytics, and I just started learning pgvector.",
    );
    const first = await reflect(h, 'talk-1');
    expect(first).toMatchObject({ status: 'applied', inserted: 3, namespaces: [techNs, profileNs] });
    expect(readPrompt(h.model.chatRequests[0]!).profiles).toEqual({ user_profile: null });

    await say(
      h,
      'talk-2',
      'ana',
      'I moved to Porto last month. pgvector is going well: I built an HNSW index and tuned ef_search. And I am vegetarian now.',
    );
    const second = await reflect(h, 'talk-2');
    expect(second).toMatchObject({ status: 'applied', inserted: 0, updated: 2, deleted: 0 });

    const prompt = readPrompt(h.model.chatRequests[1]!);
    expect(prompt.profiles).toEqual({ user_profile: { name: 'Ana', city: 'Lisbon' } });
    expect(prompt.existing.map((m) => m.kind)).toEqual(['tech_interest', 'tech_interest']);
    expect(prompt.tools).toEqual(['insert_tech_interest', 'patch_user_profile', 'update_memory']);

    expect(await memoryValues(h.runtime, profileNs)).toEqual([
      { kind: 'user_profile', value: { name: 'Ana', city: 'Porto', diet: 'vegetarian' } },
    ]);
    expect((await memoryValues(h.runtime, techNs)).map((m) => m.value)).toEqual([
      {
        technology: 'pgvector',
        interest_level: 'high',
        proficiency: 'intermediate',
        context: 'Built an HNSW index and tuned ef_search',
      },
      {
        technology: 'PostgreSQL',
        interest_level: 'high',
        proficiency: 'advanced',
        context: 'Five years of analytics work',
      },
    ]);

    const state = await storeState(h.runtime);
    const profileRows = state.history.filter((r) => r.key === 'profile:user_profile');
    expect(profileRows.map((r) => [r.op, r.version, r.before, r.after])).toEqual([
      ['insert', 1, null, { name: 'Ana', city: 'Lisbon' }],
      ['update', 2, { name: 'Ana', city: 'Lisbon' }, { name: 'Ana', city: 'Porto', diet: 'vegetarian' }],
    ]);
    // Only the declared fields are embedded, one vector each.
    const tech = state.memories.filter((m) => m.kind === 'tech_interest');
    expect(tech.map((m) => m.fields)).toEqual([
      ['context', 'technology'],
      ['context', 'technology'],
    ]);
    expect(state.namespaces).toEqual([
      { namespace: profileNs, version: 2 },
      { namespace: techNs, version: 2 },
    ]);
  });

  it('keeps prompts flat: existing memories shown are bounded by top-k, whatever the namespace holds', async () => {
    const k = h.runtime.reflectSettings.existingTopK;
    h.model.chat = (request) => {
      const said = readPrompt(request)
        .turns.map((t) => t.content)
        .join(' ');
      const n = /I tried tool-(\d+)/.exec(said)?.[1];
      return n
        ? {
            toolCalls: Array.from({ length: 10 }, (_, i) => ({
              name: 'insert_tech_interest',
              arguments: {
                technology: `tool-${n}-${i}`,
                interest_level: 'low',
                proficiency: 'none',
                context: `batch ${n}`,
              },
            })),
          }
        : { content: 'no changes' };
    };
    for (let batch = 0; batch < 3; batch++) {
      await say(h, `grow-${batch}`, 'bo', `I tried tool-${batch} things`);
      await reflect(h, `grow-${batch}`);
    }
    await say(h, 'grow-last', 'bo', 'Tell me about tool-0 and tool-1 and tool-2');
    h.model.chatRequests.length = 0;
    await reflect(h, 'grow-last');
    const shown = readPrompt(h.model.chatRequests[0]!).existing;
    expect((await memoryValues(h.runtime, ['tech', 'bo'])).length).toBe(30);
    expect(shown.length).toBe(k);
  });
});

describe('formation: a profile with a TTL', () => {
  let h: Harness;
  const session = defineKind({
    name: 'session',
    description: 'What the user is doing right now',
    namespace: ['sessions', '{userId}'],
    mode: 'profile',
    ttlMs: 1,
    schema: z.object({ doing: z.string() }),
  });
  beforeAll(async () => {
    h = await startHarness({
      roles: [],
      runtime: { kinds: [session] },
      chat: (request) => ({
        toolCalls: [
          {
            name: 'patch_session',
            arguments: {
              doing: readPrompt(request)
                .turns.map((t) => t.content)
                .join(' '),
            },
          },
        ],
      }),
    });
  });
  afterAll(async () => h?.stop());

  it('starts an expired profile that was not swept yet afresh at its key, as any writer would, instead of colliding with it', async () => {
    await say(h, 's-1', 'u1', 'packing for Kyoto');
    expect(await reflect(h, 's-1')).toMatchObject({ status: 'applied', inserted: 1 });
    await waitFor(async () => (await h.runtime.store.get(['sessions', 'u1'], 'profile:session')) === null);
    await say(h, 's-2', 'u1', 'at the airport');
    expect(await reflect(h, 's-2')).toMatchObject({ status: 'applied', inserted: 1, updated: 0 });
    // Expired is gone: the model is not shown it, and nothing of it carries over.
    expect(readPrompt(h.model.chatRequests[1]!).profiles).toEqual({ session: null });
    const rows = (await storeState(h.runtime)).history;
    // The writer's one expiry rule: the expiry is recorded and takes the expired documents with
    // it, then the key continues its versions.
    expect(rows.map((r) => [r.op, r.version, r.before, r.after])).toEqual([
      ['insert', 1, null, null],
      ['expire', 1, null, null],
      ['insert', 2, null, { doing: 'at the airport' }],
    ]);
  });
});

describe('formation: a profile an application rewrote through the store', () => {
  let h: Harness;
  // A collection and a profile in one namespace: a row at the profile's key could pass for either.
  const kinds = [
    defineKind({
      name: 'memory',
      description: 'A fact about the user',
      namespace: ['users', '{userId}'],
      schema: z.object({ content: z.string() }),
    }),
    defineKind({
      name: 'user_profile',
      description: 'Stable facts about the user',
      namespace: ['users', '{userId}'],
      mode: 'profile',
      schema: z.object({ name: z.string(), city: z.string() }).partial(),
    }),
  ];
  beforeAll(async () => {
    h = await startHarness({
      roles: [],
      runtime: { kinds },
      chat: (request) => {
        const city = /I live in (\w+)/.exec(
          readPrompt(request)
            .turns.map((t) => t.content)
            .join(' '),
        )?.[1];
        return city ? { toolCalls: [{ name: 'patch_user_profile', arguments: { city } }] } : { content: 'no changes' };
      },
    });
  });
  afterAll(async () => h?.stop());
  const key = 'profile:user_profile';

  it('an app edits the profile and puts it back without a kind: the next reflection patches it', async () => {
    const ns = ['users', 'u1'];
    await say(h, 'p-1', 'u1', 'I live in Lisbon');
    expect(await reflect(h, 'p-1')).toMatchObject({ status: 'applied', inserted: 1 });
    const read = (await h.runtime.storeApi.get({ namespace: ns, key }))!;
    await h.runtime.storeApi.put({ namespace: ns, key, value: { ...read.value, name: 'Ana' } });

    await say(h, 'p-2', 'u1', 'I live in Porto');
    expect(await reflect(h, 'p-2')).toMatchObject({ status: 'applied', inserted: 0, updated: 1 });
    expect(await memoryValues(h.runtime, ns)).toEqual([
      { kind: 'user_profile', value: { name: 'Ana', city: 'Porto' } },
    ]);
  });

  it('a row at the profile key stored with another kind is shown and patched as the profile, and never as a memory', async () => {
    const ns = ['users', 'u2'];
    // As a put named it, or as puts without a kind labelled it before they kept the item's kind.
    await h.runtime.storeApi.put({ namespace: ns, key, value: { city: 'Lisbon' }, kind: 'memory' });
    await h.runtime.storeApi.put({ namespace: ns, key: 'tennis', value: { content: 'User lives for tennis' } });
    h.model.chatRequests.length = 0;

    await say(h, 'p-3', 'u2', 'I live in Porto');
    expect(await reflect(h, 'p-3')).toMatchObject({ status: 'applied', inserted: 0, updated: 1 });
    const prompt = readPrompt(h.model.chatRequests[0]!);
    expect(prompt.profiles).toEqual({ user_profile: { city: 'Lisbon' } });
    expect(prompt.existing.map((m) => m.document)).toEqual([{ content: 'User lives for tennis' }]);
    expect(await memoryValues(h.runtime, ns)).toEqual([
      { kind: 'user_profile', value: { city: 'Porto' } },
      { kind: 'memory', value: { content: 'User lives for tennis' } },
    ]);
  });
});

describe('formation: what a reflection reads from a long buffer', () => {
  let h: Harness;
  const seen: { earlier: string[]; turns: string[] }[] = [];
  // Remembers nothing, and records what it was shown.
  const recorder: ChatHandler = (request) => {
    const { earlier, turns } = readPrompt(request);
    seen.push({ earlier: earlier.map((t) => t.content), turns: turns.map((t) => t.content) });
    return { toolCalls: [] };
  };
  beforeAll(async () => {
    h = await startHarness({ roles: [], chat: recorder });
  });
  afterAll(async () => h?.stop());

  it('takes a backlog max turns at a time, and reads after the cursor past what a trim that never ran left', async () => {
    const base = h.runtime.reflectDeps();
    const deps = { ...base, settings: { ...base.settings, maxTurns: 3, contextTurns: 2 } };
    const turns = Array.from({ length: 8 }, (_, i) => `turn ${i + 1}`);
    await say(h, 'long-1', 'u7', ...turns);

    // The first three; the rest is a backlog for a follow-up.
    expect(await reflectThread(deps, 'long-1', { actor: 'test:1' })).toMatchObject({ turns: 3, backlog: true });
    // The next three, after the two kept as context; the process dies before its trim.
    const dying = Object.create(deps.buffer) as typeof deps.buffer;
    dying.trim = async () => false;
    expect(await reflectThread({ ...deps, buffer: dying }, 'long-1', { actor: 'test:2' })).toMatchObject({ turns: 3 });
    // The buffer still holds turns 2 to 6 in front of the cursor: the next reflection reads the
    // last two as context and only the turns after the cursor as new.
    expect(await reflectThread(deps, 'long-1', { actor: 'test:3' })).toMatchObject({ turns: 2, backlog: false });
    expect(await reflectThread(deps, 'long-1', { actor: 'test:4' })).toMatchObject({ status: 'nothing-pending' });
    expect(seen).toEqual([
      { earlier: [], turns: turns.slice(0, 3) },
      { earlier: turns.slice(1, 3), turns: turns.slice(3, 6) },
      { earlier: turns.slice(4, 6), turns: turns.slice(6, 8) },
    ]);
  });
});
