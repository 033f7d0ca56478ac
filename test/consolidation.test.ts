import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import pg from 'pg';
import { z } from 'zod';
import { awayOf, reflectionProbes } from '../src/app/dependency-outage.js';
import { modelProbe } from '../src/llm/probe.js';
import { consolidate, DEFAULT_MERGE_LIMITS, groupCandidates, type MergeSettings } from '../src/memory/consolidate.js';
import { defaultKinds, defineKind } from '../src/memory/kinds.js';
import { MemoryManager } from '../src/memory/manager.js';
import { FakeModel, readPrompt, type ChatReply, type ChatRequest } from './fake-model/server.js';
import { backends, openStore, type StoreFixture } from './helpers/backends.js';
import { TEST_DATABASE_URL } from './helpers/harness.js';
import { chatModelFor, silentLog } from './helpers/models.js';
import { contentsIn } from './helpers/store-state.js';
import { tables } from '../src/store/sql.js';

/** The probes the service gives a pass, the chat model's against `model`; the others always answer. */
const probesOf = (model: FakeModel) => {
  const settings = { baseURL: model.url, apiKey: 'test-key', timeoutMs: 5_000 };
  const answers = async () => undefined;
  return reflectionProbes({
    postgres: answers,
    chat: modelProbe(settings),
    embedding: answers,
    chatRate: answers,
    embeddingRate: answers,
  });
};

/**
 * Consolidation merges near-duplicates: vector distance picks the candidates, the model decides,
 * and the merge commits like a reflection, comparing the grouped memories' versions. The fake
 * embedding is a bag of words, so "User loves ramen" and "User really loves ramen" lie 0.18
 * apart and "User has a cat" far from both.
 */
describe.each(backends)('consolidation merges near-duplicates on $name', (backend) => {
  const model = new FakeModel();
  let f: StoreFixture;
  let merge: MergeSettings;
  beforeAll(async () => {
    await model.start();
    f = await openStore(backend);
    merge = {
      manager: new MemoryManager(chatModelFor(model), silentLog),
      embedder: f.embedder,
      kinds: defaultKinds,
      maxDistance: 0.25,
      maxNamespaces: 100,
    };
  });
  afterAll(async () => {
    await f?.close();
    await model.stop();
  });
  beforeEach(async () => {
    // Each test starts with every namespace consolidated: a merge's own commit is a write, which
    // the next pass looks at (cheaply: the duplicates it deleted are gone).
    answers({ content: 'no changes' });
    for (let i = 0; i < 5 && (await pass()).namespaces > 0; i++);
    expect((await pass()).namespaces).toBe(0);
    model.chatRequests.length = 0;
  });

  /** One pass, with the suite's merge settings unless a test gives its own (null: no merge settings at all). */
  const pass = (settings: MergeSettings | null = merge) =>
    consolidate(f.memories, 'consolidation:test', silentLog, settings ?? undefined);
  const put = (user: string, key: string, content: string) =>
    f.store.put({ namespace: ['memories', user], key, value: { content } });
  const answers = (...replies: ChatReply[]) => {
    model.chat = (_req, i) => replies[Math.min(i, replies.length - 1)] as ChatReply;
  };
  const contents = (user: string) => contentsIn(f.db, f.memories.schema, ['memories', user]);
  /** The model merges the first group's two ramen memories. */
  const mergeBoth: ChatReply = {
    toolCalls: [
      { name: 'update_memory', arguments: { id: 'm1', document: { content: 'User really loves ramen' } } },
      { name: 'delete_memory', arguments: { id: 'm2' } },
    ],
  };
  /** Every row of every table a consolidation writes. */
  const state = async () =>
    Promise.all(
      [
        `select * from ${tables(f.memories.schema).memories} order by namespace, key`,
        `select id, op, key from ${tables(f.memories.schema).history} order by id`,
      ].map(async (q) => (await f.db.query(q)).rows),
    );

  it('merges what the model confirms, shows it only the near ones, and looks again only at what changed', async () => {
    await put('u1', 'k1', 'User loves ramen');
    await put('u1', 'k2', 'User really loves ramen');
    await put('u1', 'k3', 'User has a cat');
    answers(mergeBoth);
    expect(await pass()).toMatchObject({ namespaces: 1, merged: 1, modelCalls: 1, conflicts: 0 });
    const { groups, tools } = readPrompt(model.chatRequests[0] as ChatRequest);
    expect(groups).toEqual([
      [
        { id: 'm1', kind: 'memory', document: { content: 'User loves ramen' } },
        { id: 'm2', kind: 'memory', document: { content: 'User really loves ramen' } },
      ],
    ]);
    expect(tools.sort()).toEqual(['delete_memory', 'update_memory']);
    expect(await contents('u1')).toEqual(['User has a cat', 'User really loves ramen']);
    const history = await f.memories.history(['memories', 'u1'], 'k2');
    expect(history.at(-1)).toMatchObject({
      op: 'delete',
      actor: 'consolidation:test',
      before: { content: 'User really loves ramen' },
    });
    expect(await f.store.get({ namespace: ['memories', 'u1'], key: 'k1' })).toMatchObject({ version: 2 });

    // The merge's own commit is looked at once (the memory it rewrote is near nothing now); then
    // nothing is written since, and a pass compares nothing and asks nothing.
    expect(await pass()).toMatchObject({ namespaces: 1, modelCalls: 0 });
    expect(await pass()).toMatchObject({ namespaces: 0, modelCalls: 0 });
    // A new memory near an old one: compared, and the model may decline.
    await put('u1', 'k4', 'User loves ramen.');
    answers({ content: 'no changes' });
    expect(await pass()).toMatchObject({ namespaces: 1, merged: 0, modelCalls: 1 });
    expect(await pass()).toMatchObject({ namespaces: 0, modelCalls: 0 });
    expect(model.chatRequests).toHaveLength(2); // the merge, and the declined one
    // A new memory near nothing: the namespace is looked at, but the declined pair, unchanged
    // since, is not compared again.
    await put('u1', 'k5', 'User owns a bicycle');
    expect(await pass()).toMatchObject({ namespaces: 1, modelCalls: 0 });
    expect(model.chatRequests).toHaveLength(2);
  });

  it('merges while other memories of the namespace are written, and leaves a group whose memory changed for the next pass', async () => {
    await put('u2', 'k1', 'User loves ramen');
    await put('u2', 'k2', 'User really loves ramen');
    // A chatty user: a reflection writes another memory while the model decides. The merge
    // stands, since it compares only the versions of the memories it rewrites.
    model.chat = async () => {
      await put('u2', 'k3', 'User has a cat');
      return mergeBoth;
    };
    expect(await pass()).toMatchObject({ namespaces: 1, merged: 1, conflicts: 0 });
    expect(await contents('u2')).toEqual(['User has a cat', 'User really loves ramen']);

    await put('u12', 'k1', 'User loves ramen');
    await put('u12', 'k2', 'User really loves ramen');
    // One of the grouped memories changes meanwhile: the merge would overwrite it, so it waits.
    model.chat = async () => {
      await put('u12', 'k2', 'User really loves ramen!');
      return mergeBoth;
    };
    expect(await pass()).toMatchObject({ merged: 0, conflicts: 1 });
    expect(await contents('u12')).toEqual(['User loves ramen', 'User really loves ramen!']);
    answers(mergeBoth);
    expect(await pass()).toMatchObject({ merged: 1, conflicts: 0 });
    expect(await contents('u12')).toEqual(['User really loves ramen']);
  });

  it('does not delete a repeat when the memory it repeats changed meanwhile', async () => {
    await put('u15', 'k1', 'User loves ramen');
    await put('u15', 'k2', 'User really loves ramen');
    // The model keeps k1 and deletes k2 as its repeat; meanwhile k1 is rewritten to say otherwise.
    model.chat = async () => {
      await put('u15', 'k1', 'User no longer eats ramen');
      return { toolCalls: [{ name: 'delete_memory', arguments: { id: 'm2' } }] };
    };
    expect(await pass()).toMatchObject({ merged: 0, conflicts: 1 });
    expect(await contents('u15')).toEqual(['User no longer eats ramen', 'User really loves ramen']);
  });

  it('keeps a group the model tried to delete whole, and applies the rest of its answer', async () => {
    await put('u3', 'a1', 'User loves ramen');
    await put('u3', 'a2', 'User really loves ramen');
    await put('u3', 'b1', 'User plays chess on Sundays');
    await put('u3', 'b2', 'User plays chess on Sunday');
    answers({
      toolCalls: [
        { name: 'delete_memory', arguments: { id: 'm2' } },
        { name: 'delete_memory', arguments: { id: 'm3' } },
        { name: 'delete_memory', arguments: { id: 'm4' } },
      ],
    });
    const outcome = await pass();
    const { groups } = readPrompt(model.chatRequests[0] as ChatRequest);
    expect(groups.map((g) => g.map((m) => m.document.content))).toEqual([
      ['User loves ramen', 'User really loves ramen'],
      ['User plays chess on Sundays', 'User plays chess on Sunday'],
    ]);
    // m3 and m4 are the whole chess group: kept. m2 is one of the ramen pair: deleted.
    expect(outcome).toMatchObject({ merged: 1 });
    expect(await contents('u3')).toEqual([
      'User loves ramen',
      'User plays chess on Sunday',
      'User plays chess on Sundays',
    ]);
  });

  it('reads a bounded number of changed memories per pass, and goes on from there at the next', async () => {
    await put('u5', 'k1', 'User loves ramen');
    await put('u5', 'k2', 'User plays chess on Sundays');
    await put('u5', 'k3', 'User really loves ramen');
    await put('u5', 'k4', 'User plays chess on Sunday');
    answers({ content: 'no changes' });
    const limited = { ...merge, limits: { ...DEFAULT_MERGE_LIMITS, changedPerNamespace: 2 } };
    const shown = () =>
      model.chatRequests.map((r) => readPrompt(r).groups.map((g) => g.map((m) => m.document.content)));
    // k1 and k2 are read first, and find their neighbours k3 and k4 although those changed later.
    expect(await pass(limited)).toMatchObject({ namespaces: 1, modelCalls: 1 });
    expect(shown()).toEqual([
      [
        ['User loves ramen', 'User really loves ramen'],
        ['User plays chess on Sundays', 'User plays chess on Sunday'],
      ],
    ]);
    // The next pass starts at k3, which the mark did not pass: its pair is shown again (declined
    // pairs are shown once more when they straddle a cut), and then the namespace is done.
    expect(await pass(limited)).toMatchObject({ namespaces: 1, modelCalls: 1 });
    expect(shown()[1]).toEqual([
      ['User really loves ramen', 'User loves ramen'],
      ['User plays chess on Sunday', 'User plays chess on Sundays'],
    ]);
    expect(await pass(limited)).toMatchObject({ namespaces: 0, modelCalls: 0 });
  });

  it('goes on with the other namespaces when one fails for a while, and tries it again at the next pass', async () => {
    await put('u6', 'k1', 'User loves ramen');
    await put('u6', 'k2', 'User really loves ramen');
    await put('u7', 'k1', 'User loves ramen');
    await put('u7', 'k2', 'User really loves ramen');
    // The first namespace's request fails (a 503, retries spent), the second merges: the
    // endpoint still answers its probe, so the 503 was that request's, not an outage.
    model.chat = (_req, i) => (i === 0 ? { status: 503, error: 'overloaded' } : mergeBoth);
    const probed = { ...merge, dependencyAway: awayOf(probesOf(model)) };
    expect(await pass(probed)).toMatchObject({ namespaces: 2, failed: 1, merged: 1 });
    const left = async () => [(await contents('u6')).length, (await contents('u7')).length];
    expect(await left()).toEqual([2, 1]);
    answers(mergeBoth);
    expect(await pass()).toMatchObject({ namespaces: 1, failed: 0, merged: 1 });
    expect(await left()).toEqual([1, 1]);
  });

  it('stops the pass when the model is out of reach for everyone, marking nothing', async () => {
    await put('u15', 'k1', 'User loves ramen');
    await put('u15', 'k2', 'User really loves ramen');
    await put('u16', 'k1', 'User loves ramen');
    await put('u16', 'k2', 'User really loves ramen');
    // A model endpoint that was there and is gone: every request and its probe find nothing listening.
    const away = await new FakeModel().start();
    const gone = {
      ...merge,
      manager: new MemoryManager(chatModelFor(away), silentLog),
      dependencyAway: awayOf(probesOf(away)),
    };
    await away.stop();
    expect(await pass(gone)).toMatchObject({
      namespaces: 1,
      failed: 1,
      stopped: { dependency: 'chat-model', reason: 'unreachable' },
    });
    answers(mergeBoth);
    expect(await pass()).toMatchObject({ namespaces: 2, merged: 2 });
  });

  it('passes over memories the model will not answer for until they change, and stops the pass on a setup error', async () => {
    await put('u9', 'k1', 'User loves ramen');
    await put('u9', 'k2', 'User really loves ramen');
    // A refused key fails every namespace alike: the pass stops, and marks nothing.
    answers({ status: 401, error: 'invalid api key' });
    await expect(pass()).rejects.toThrow(/refused: 401 invalid api key/);
    // A content filter is about these memories: passed over, not asked again every pass. On
    // the answer (a finish reason) as on the prompt (Azure's 400 with that code).
    answers({ status: 400, error: 'the prompt was filtered', code: 'content_filter' });
    expect(await pass()).toMatchObject({ namespaces: 1, failed: 1, merged: 0 });
    expect(await pass()).toMatchObject({ namespaces: 0, modelCalls: 0 });
    await put('u9', 'k4', 'User loves ramen a lot');
    answers({ ...mergeBoth, finishReason: 'content_filter' });
    expect(await pass()).toMatchObject({ namespaces: 1, failed: 1, merged: 0 });
    expect(await pass()).toMatchObject({ namespaces: 0, modelCalls: 0 });
    // So is an answer that stays invalid through its repair rounds.
    await put('u9', 'k3', 'User really really loves ramen');
    answers({ toolCalls: [{ name: 'delete_memory', arguments: { id: 'm9' } }] });
    expect(await pass()).toMatchObject({ namespaces: 1, failed: 1, modelCalls: 3 });
    expect(await pass()).toMatchObject({ namespaces: 0, modelCalls: 0 });
    expect(await contents('u9')).toHaveLength(4);
  });

  it('asks in halves when the groups are too long for the model together, and passes over one too long alone', async () => {
    await put('u20', 'k1', 'User loves ramen');
    await put('u20', 'k2', 'User really loves ramen');
    await put('u20', 'k3', 'User has a cat');
    await put('u20', 'k4', 'User really has a cat');
    const tooLong: ChatReply = {
      status: 400,
      error: "This model's maximum context length is 8192 tokens",
      code: 'context_length_exceeded',
    };
    // One group fits; two do not. Each merge keeps the group's second, longer memory.
    model.chat = (request) => {
      const { groups } = readPrompt(request);
      if (groups.length > 1) return tooLong;
      const [, second] = groups[0] ?? [];
      return {
        toolCalls: [
          { name: 'update_memory', arguments: { id: 'm1', document: second?.document } },
          { name: 'delete_memory', arguments: { id: 'm2' } },
        ],
      };
    };
    expect(await pass()).toMatchObject({ namespaces: 1, merged: 2, modelCalls: 3, failed: 0 });
    expect(model.chatRequests.map((r) => readPrompt(r).groups.length)).toEqual([2, 1, 1]);
    expect(await contents('u20')).toEqual(['User really has a cat', 'User really loves ramen']);

    // Too long even alone: passed over, not asked again until it changes; the pass goes on.
    await put('u20', 'k5', 'User really loves ramen a lot');
    model.chatRequests.length = 0;
    answers(tooLong);
    expect(await pass()).toMatchObject({ namespaces: 1, merged: 0, modelCalls: 1 });
    expect(await pass()).toMatchObject({ namespaces: 0, modelCalls: 0 });
    expect(await contents('u20')).toHaveLength(3);
  });

  it('tries the namespaces least recently tried first, so that one failing every pass holds no other back', async () => {
    for (const user of ['u13', 'u14']) {
      await put(user, 'k1', 'User loves ramen');
      await put(user, 'k2', 'User really loves ramen');
    }
    const one = { ...merge, maxNamespaces: 1 };
    model.chat = (_req, i) => (i === 0 ? { status: 503, error: 'overloaded' } : mergeBoth);
    // u13 (written first) fails; the next pass takes u14, not u13 again.
    expect(await pass(one)).toMatchObject({ namespaces: 1, failed: 1 });
    expect(await pass(one)).toMatchObject({ namespaces: 1, merged: 1 });
    expect([(await contents('u13')).length, (await contents('u14')).length]).toEqual([2, 1]);
  });

  it('gets through memories written in one transaction, one pass at a time', async () => {
    // One batch: the three share their change time, so only a (time, key) mark can tell how far a pass got.
    await f.store.batch(
      [
        ['k1', 'User loves ramen'],
        ['k2', 'User really loves ramen'],
        ['k3', 'User owns a bicycle'],
      ].map(([key, content]) => ({ op: 'put', namespace: ['memories', 'u10'], key, value: { content } })),
    );
    answers({ content: 'no changes' });
    const limited = { ...merge, limits: { ...DEFAULT_MERGE_LIMITS, changedPerNamespace: 1 } };
    const passes = [];
    for (let i = 0; i < 4; i++) {
      const o = await pass(limited);
      passes.push([o.namespaces, o.modelCalls]);
    }
    // k1 (near k2), k2 (near k1), k3 (near nothing), then done.
    expect(passes).toEqual([
      [1, 1],
      [1, 1],
      [1, 0],
      [0, 0],
    ]);
  });

  it("asks once per kind, with that kind's schema, and pairs memories only when every embedded field is near", async () => {
    const note = defineKind({
      name: 'note',
      description: 'A note',
      namespace: ['memories', '{userId}'],
      schema: z.object({ content: z.string(), category: z.string() }),
      embedFields: ['content', 'category'],
    });
    const kinds = { ...merge, kinds: [...defaultKinds, note] };
    const putNote = (key: string, content: string, category: string) =>
      f.store.put({
        namespace: ['memories', 'u8'],
        key,
        kind: 'note',
        value: { content, category },
        index: ['content', 'category'],
      });
    await putNote('n1', 'User loves ramen', 'food');
    await putNote('n2', 'User really loves ramen', 'food');
    await putNote('n3', 'User plays chess on Sundays', 'food'); // same category, another fact
    await put('u8', 'k1', 'User owns a bicycle');
    await put('u8', 'k2', 'User owns a red bicycle');
    answers({ content: 'no changes' });
    expect(await pass(kinds)).toMatchObject({ namespaces: 1, modelCalls: 2 });
    const requests = model.chatRequests.map((r) => ({
      groups: readPrompt(r).groups.map((g) => g.map((m) => [m.kind, m.document.content])),
      update: r.tools?.find((t) => t.function.name === 'update_memory')?.function.parameters as {
        properties: { document: { properties?: Record<string, unknown> } };
      },
    }));
    expect(requests.map((r) => r.groups)).toEqual([
      [
        [
          ['memory', 'User owns a bicycle'],
          ['memory', 'User owns a red bicycle'],
        ],
      ],
      [
        [
          ['note', 'User loves ramen'],
          ['note', 'User really loves ramen'],
        ],
      ],
    ]);
    expect(requests.map((r) => Object.keys(r.update.properties.document.properties ?? {}).sort())).toEqual([
      ['content'],
      ['category', 'content'],
    ]);
  });

  it.skipIf(backend.name === 'pglite')(
    'does not mark past a writer still open, whose rows will carry its start time',
    async () => {
      await put('u11', 'k1', 'User owns a bicycle');
      // A writer begins (its rows will be stamped with this time) and waits on another namespace's lock.
      const writer = new pg.Client({ connectionString: TEST_DATABASE_URL });
      await writer.connect();
      try {
        await writer.query('begin');
        const started = (await writer.query<{ at: string }>('select now()::text as at')).rows[0]?.at;
        await writer.query(`select 1 from ${tables(f.memories.schema).namespaces} where namespace = $1 for update`, [
          ['memories', 'u1'],
        ]);
        await put('u11', 'k2', 'User has a cat'); // committed meanwhile, after the writer began
        expect(await pass()).toMatchObject({ namespaces: 1, modelCalls: 0 });
        const mark = await f.db.query<{ before: boolean }>(
          `select consolidated_at < $2::timestamptz as before from ${tables(f.memories.schema).namespaces} where namespace = $1`,
          [['memories', 'u11'], started],
        );
        expect(mark.rows[0]?.before).toBe(true);
      } finally {
        await writer.query('rollback');
        await writer.end();
      }
      // The writer gone, the next pass looks again and marks through now.
      expect(await pass()).toMatchObject({ namespaces: 1, modelCalls: 0 });
      expect(await pass()).toMatchObject({ namespaces: 0 });
    },
  );

  it('never asks the model when merging is off', async () => {
    await put('u4', 'k1', 'User loves ramen');
    await put('u4', 'k2', 'User really loves ramen');
    const before = await state();
    expect(await pass({ ...merge, maxDistance: 0 })).toMatchObject({ namespaces: 0, modelCalls: 0 });
    expect(await pass(null)).toMatchObject({ namespaces: 0, modelCalls: 0 });
    expect(await state()).toEqual(before);
  });
});

describe('consolidation candidates', () => {
  const memory = (key: string, ...near: string[]) => ({
    key,
    changedAt: `t-${key}`,
    near: near.map((k) => ({ key: k, distance: 0.1 })),
  });
  const limits = { maxGroups: 2, maxGroupSize: 4 };

  it('joins neighbours transitively, oldest change first', () => {
    expect(groupCandidates([memory('a', 'b'), memory('c', 'd'), memory('b', 'c'), memory('x')], limits)).toEqual({
      groups: [['a', 'b', 'c', 'd']],
      taken: 4,
    });
  });

  it('stops before the memory whose neighbours would break a bound, for the next pass to start there', () => {
    expect(groupCandidates([memory('a', 'b'), memory('c', 'd'), memory('e', 'f')], limits)).toEqual({
      groups: [
        ['a', 'b'],
        ['c', 'd'],
      ],
      taken: 2,
    });
    expect(groupCandidates([memory('a', 'b', 'c'), memory('d', 'a', 'e')], limits)).toEqual({
      groups: [['a', 'b', 'c']],
      taken: 1,
    });
  });

  it('takes the first memory even when its neighbours alone break a bound, so that a pass always gets somewhere', () => {
    expect(groupCandidates([memory('a', 'b', 'c', 'd', 'e', 'f'), memory('x', 'y')], limits)).toEqual({
      groups: [
        ['a', 'b', 'c', 'd'],
        ['x', 'y'],
      ],
      taken: 2,
    });
  });
});
