import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { consolidate, groupPairs, type MergeSettings } from '../src/memory/consolidate.js';
import { defaultKinds } from '../src/memory/kinds.js';
import { MemoryManager } from '../src/memory/manager.js';
import { FakeModel, readPrompt, type ChatReply, type ChatRequest } from './fake-model/server.js';
import { backends, openStore, type StoreFixture } from './helpers/backends.js';
import { chatModelFor, silentLog } from './helpers/models.js';

/**
 * Consolidation merges near-duplicates: vector distance picks the candidates, the model decides,
 * and the merge commits under the namespace's version like a reflection. The fake embedding is
 * a bag of words, so "User loves ramen" and "User really loves ramen" lie 0.18 apart and
 * "User has a cat" far from both.
 */
describe.each(backends)('consolidation merges near-duplicates on $name', (backend) => {
  const model = new FakeModel();
  let f: StoreFixture;
  let merge: MergeSettings;
  beforeAll(async () => {
    await model.start();
    f = await openStore(backend);
    merge = { manager: new MemoryManager(chatModelFor(model), silentLog), embedder: f.embedder, kinds: defaultKinds, maxDistance: 0.25, maxNamespaces: 100 };
  });
  afterAll(async () => {
    await f?.close();
    await model.stop();
  });
  beforeEach(() => {
    model.chatRequests.length = 0;
  });

  const pass = () => consolidate(f.memories, 'consolidation:test', silentLog, merge);
  const put = (user: string, key: string, content: string) => f.store.put({ namespace: ['memories', user], key, value: { content } });
  const answers = (...replies: ChatReply[]) => {
    model.chat = (_req, i) => replies[Math.min(i, replies.length - 1)] as ChatReply;
  };
  const contents = async (user: string) =>
    (await f.db.query<{ content: string }>(`select value->>'content' as content from ${f.memories.t.memories} where namespace = $1 order by 1`, [['memories', user]])).rows.map((r) => r.content);
  /** Every row of every table a consolidation writes. */
  const state = async () =>
    Promise.all([`select * from ${f.memories.t.memories} order by namespace, key`, `select id, op, key from ${f.memories.t.history} order by id`].map(async (q) => (await f.db.query(q)).rows));

  it('merges what the model confirms, shows it only the near ones, and looks again only at what changed', async () => {
    await put('u1', 'k1', 'User loves ramen');
    await put('u1', 'k2', 'User really loves ramen');
    await put('u1', 'k3', 'User has a cat');
    answers({
      toolCalls: [
        { name: 'update_memory', arguments: { id: 'm1', document: { content: 'User really loves ramen' } } },
        { name: 'delete_memory', arguments: { id: 'm2' } },
      ],
    });
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
    expect(history.at(-1)).toMatchObject({ op: 'delete', actor: 'consolidation:test', before: { content: 'User really loves ramen' } });
    expect(await f.store.get({ namespace: ['memories', 'u1'], key: 'k1' })).toMatchObject({ version: 2 });

    // Nothing written since: the next pass compares nothing and asks nothing.
    expect(await pass()).toMatchObject({ namespaces: 0, modelCalls: 0 });
    // A new memory near an old one: compared, and the model may decline.
    await put('u1', 'k4', 'User loves ramen.');
    answers({ content: 'no changes' });
    expect(await pass()).toMatchObject({ namespaces: 1, merged: 0, modelCalls: 1 });
    expect(await pass()).toMatchObject({ namespaces: 0, modelCalls: 0 });
    expect(model.chatRequests).toHaveLength(2); // the merge, and the declined one
  });

  it('leaves a namespace written during its merge for the next pass', async () => {
    await put('u2', 'k1', 'User loves ramen');
    await put('u2', 'k2', 'User really loves ramen');
    const mergeBoth: ChatReply = {
      toolCalls: [
        { name: 'update_memory', arguments: { id: 'm1', document: { content: 'User really loves ramen' } } },
        { name: 'delete_memory', arguments: { id: 'm2' } },
      ],
    };
    model.chat = async () => {
      await put('u2', 'k3', 'User has a cat'); // a reflection or an app writes meanwhile
      return mergeBoth;
    };
    const before = await contents('u2');
    expect(await pass()).toMatchObject({ namespaces: 1, merged: 0, conflicts: 1 });
    expect(await contents('u2')).toEqual([...before, 'User has a cat'].sort());

    answers(mergeBoth);
    expect(await pass()).toMatchObject({ namespaces: 1, merged: 1, conflicts: 0 });
    expect(await contents('u2')).toEqual(['User has a cat', 'User really loves ramen']);
  });

  it('keeps a group the model tried to delete whole, and applies the rest of its answer', async () => {
    await put('u3', 'a1', 'User loves ramen');
    await put('u3', 'a2', 'User really loves ramen');
    await put('u3', 'b1', 'User plays chess on Sundays');
    await put('u3', 'b2', 'User plays chess on Sunday');
    answers({
      toolCalls: [
        { name: 'delete_memory', arguments: { id: 'm1' } },
        { name: 'delete_memory', arguments: { id: 'm2' } },
        { name: 'delete_memory', arguments: { id: 'm4' } },
      ],
    });
    const outcome = await pass();
    const { groups } = readPrompt(model.chatRequests[0] as ChatRequest);
    expect(groups.map((g) => g.map((m) => m.document.content))).toEqual([
      ['User plays chess on Sundays', 'User plays chess on Sunday'],
      ['User loves ramen', 'User really loves ramen'],
    ]);
    // m1 and m2 are the whole chess group: kept. m4 is one of the ramen pair: deleted.
    expect(outcome).toMatchObject({ merged: 1 });
    expect(await contents('u3')).toEqual(['User loves ramen', 'User plays chess on Sunday', 'User plays chess on Sundays']);
  });

  it('never asks the model when merging is off', async () => {
    await put('u4', 'k1', 'User loves ramen');
    await put('u4', 'k2', 'User really loves ramen');
    const before = await state();
    expect(await consolidate(f.memories, 'consolidation:test', silentLog, { ...merge, maxDistance: 0 })).toMatchObject({ namespaces: 0, modelCalls: 0 });
    expect(await consolidate(f.memories, 'consolidation:test', silentLog)).toMatchObject({ namespaces: 0, modelCalls: 0 });
    expect(await state()).toEqual(before);
  });
});

describe('consolidation candidates', () => {
  it('groups pairs transitively, closest first, within the size bound', () => {
    const pair = (a: string, b: string) => ({ a, b, distance: 0.1 });
    expect(groupPairs([pair('a', 'b'), pair('c', 'd'), pair('b', 'c'), pair('x', 'y')])).toEqual([
      ['a', 'b', 'c', 'd'],
      ['x', 'y'],
    ]);
    const chain = Array.from({ length: 12 }, (_, i) => pair(`k${i}`, `k${i + 1}`));
    expect(groupPairs(chain).map((g) => g.length)).toEqual([8, 5]);
  });
});
