import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { consolidate, type MergeSettings } from '../src/memory/consolidate.js';
import { defaultKinds, defineKind } from '../src/memory/kinds.js';
import { MemoryManager } from '../src/memory/manager.js';
import { tables } from '../src/store/sql.js';
import { FakeModel, readPrompt, type ChatReply } from './fake-model/server.js';
import { backends, openStore, type StoreFixture } from './helpers/backends.js';
import { chatModelFor, silentLog } from './helpers/models.js';
import { contentsIn } from './helpers/store-state.js';

/**
 * What a consolidation merge commits, beside the model's answer: which of its decisions stand
 * when part of them fail. The fake embedding is a bag of words, so "User loves ramen" and "User
 * really loves ramen" lie near each other, as do the two chess sentences.
 */
describe.each(backends)('what a consolidation pass commits on $name', (backend) => {
  const model = new FakeModel();
  const note = defineKind({
    name: 'note',
    description: 'A note',
    namespace: ['memories', '{userId}'],
    schema: z.object({ content: z.string() }),
  });
  /** A kind whose writes take a 30-day TTL, as a rewrite by the model does. */
  const timed = defineKind({
    name: 'timed',
    description: 'A note kept for 30 days',
    namespace: ['memories', '{userId}'],
    schema: z.object({ content: z.string() }),
    ttlMs: 30 * 86_400_000,
  });
  let f: StoreFixture;
  let merge: MergeSettings;
  beforeAll(async () => {
    await model.start();
    f = await openStore(backend);
    merge = {
      manager: new MemoryManager(chatModelFor(model), silentLog),
      embedder: f.embedder,
      kinds: [...defaultKinds, note, timed],
      maxDistance: 0.25,
      maxNamespaces: 100,
    };
  });
  afterAll(async () => {
    await f?.close();
    await model.stop();
  });
  beforeEach(async () => {
    // Every namespace consolidated: each test's pass sees only its own memories.
    model.chat = () => ({ content: 'no changes' });
    for (let i = 0; i < 5 && (await pass()).namespaces > 0; i++);
    model.chatRequests.length = 0;
  });

  const pass = () => consolidate(f.memories, 'consolidation:test', silentLog, merge);
  const put = (user: string, key: string, content: string, kind = 'memory') =>
    f.store.put({ namespace: ['memories', user], key, kind, value: { content } });
  const keys = async (user: string) =>
    (
      await f.db.query<{ key: string }>(
        `select key from ${tables(f.memories.schema).memories} where namespace = $1 order by 1`,
        [['memories', user]],
      )
    ).rows.map((r) => r.key);
  const contents = (user: string) => contentsIn(f.db, f.memories.schema, ['memories', user]);
  /** The model merges the first group's two memories. */
  const mergeFirst: ChatReply = {
    toolCalls: [
      { name: 'update_memory', arguments: { id: 'm1', document: { content: 'User really loves ramen' } } },
      { name: 'delete_memory', arguments: { id: 'm2' } },
    ],
  };

  it("passes over only the memories of a filtered request, and commits the other kinds' merges", async () => {
    await put('c1', 'k1', 'User loves ramen');
    await put('c1', 'k2', 'User really loves ramen');
    await put('c1', 'n1', 'User plays chess on Sundays', 'note');
    await put('c1', 'n2', 'User plays chess on Sunday', 'note');
    // The notes' request is filtered; the memories' merge stands.
    model.chat = (request) =>
      readPrompt(request).groups.some((g) => g.some((m) => m.kind === 'note'))
        ? { status: 400, error: 'the prompt was filtered', code: 'content_filter' }
        : mergeFirst;
    expect(await pass()).toMatchObject({ namespaces: 1, merged: 1, failed: 1 });
    expect(await keys('c1')).toEqual(['k1', 'n1', 'n2']);
    // The filtered notes are passed over until they change: not asked about again.
    model.chatRequests.length = 0;
    await pass();
    expect(model.chatRequests).toHaveLength(0);
  });

  it('does not write an erased text over keys put again after the erase', async () => {
    await put('e1', 'k1', 'User loves ramen');
    await put('e1', 'k2', 'User really loves ramen');
    // While the model decides, the user's memories are erased and the same keys put again: they
    // start over at version 1, the versions the merge read.
    model.chat = async () => {
      await f.memories.erase({ prefixes: [['memories', 'e1']], threads: [], actor: 'api', scope: {} });
      await put('e1', 'k1', 'User is vegan');
      await put('e1', 'k2', 'User drinks tea');
      return mergeFirst;
    };
    expect(await pass()).toMatchObject({ merged: 0, conflicts: 1 });
    expect(await contents('e1')).toEqual(['User drinks tea', 'User is vegan']);
  });

  it('leaves out a memory invalidated after the candidates were read', async () => {
    await put('i1', 'k1', 'User loves ramen');
    await put('i1', 'k2', 'User really loves ramen');
    // A reflection says k2 no longer holds just after the candidates were read: its text must not
    // be carried into k1, which still holds.
    const store = new Proxy(f.memories, {
      get(target, prop, receiver) {
        if (prop !== 'nearDuplicateCandidates') return Reflect.get(target, prop, receiver) as unknown;
        return async (...args: Parameters<typeof target.nearDuplicateCandidates>) => {
          const found = await target.nearDuplicateCandidates(...args);
          await target.apply({
            actor: 'reflection:test',
            writes: [{ op: 'invalidate', namespace: ['memories', 'i1'], key: 'k2' }],
          });
          return found;
        };
      },
    });
    model.chat = () => mergeFirst;
    expect(await consolidate(store, 'consolidation:test', silentLog, merge)).toMatchObject({
      merged: 0,
      modelCalls: 0,
    });
    expect(await contents('i1')).toEqual(['User loves ramen', 'User really loves ramen']);
  });

  describe('lifetimes', () => {
    const HOUR = 3_600_000;
    const putFor = (user: string, key: string, content: string, ttl: number | null) =>
      f.store.put({ namespace: ['memories', user], key, value: { content }, ttl });
    const expiries = async (user: string) =>
      Object.fromEntries(
        (
          await f.db.query<{ key: string; left: number | null }>(
            `select key, extract(epoch from expires_at - now()) * 1000 as left
               from ${tables(f.memories.schema).memories} where namespace = $1`,
            [['memories', user]],
          )
        ).rows.map((r) => [r.key, r.left === null ? null : Number(r.left)]),
      );

    it('a rewrite that takes in a memory that never expires never expires', async () => {
      await putFor('l1', 'k1', 'User loves ramen', HOUR);
      await putFor('l1', 'k2', 'User really loves ramen', null);
      model.chat = () => mergeFirst;
      expect(await pass()).toMatchObject({ merged: 1 });
      expect(await expiries('l1')).toEqual({ k1: null });
    });

    it('a rewrite lives at least as long as the longest-lived memory it takes in', async () => {
      await putFor('l2', 'k1', 'User loves ramen', HOUR);
      await putFor('l2', 'k2', 'User really loves ramen', 10 * HOUR);
      model.chat = () => mergeFirst;
      expect(await pass()).toMatchObject({ merged: 1 });
      expect((await expiries('l2')).k1).toBeGreaterThan(9 * HOUR);
    });

    it('a repeat deleted beside a memory kept as it is hands it its life', async () => {
      await putFor('l3', 'k1', 'User loves ramen', HOUR);
      await putFor('l3', 'k2', 'User really loves ramen', null);
      await putFor('l3', 'k3', 'User plays chess on Sundays', null);
      await putFor('l3', 'k4', 'User plays chess on Sunday', HOUR);
      // Each group's second memory deleted as a repeat of its first, kept as it is: the ramen
      // repeat never expires, so the memory kept for it no longer does; the chess one kept its own.
      model.chat = () => ({
        toolCalls: [
          { name: 'delete_memory', arguments: { id: 'm2' } },
          { name: 'delete_memory', arguments: { id: 'm4' } },
        ],
      });
      expect(await pass()).toMatchObject({ merged: 2 });
      expect(await expiries('l3')).toEqual({ k1: null, k3: null });
      expect(await f.store.get({ namespace: ['memories', 'l3'], key: 'k1' })).toMatchObject({
        value: { content: 'User loves ramen' },
      });
    });
    it("a kept memory that never expires keeps doing so when its kind's rewrites take a TTL", async () => {
      // k2 predates k1, so k1 is written to take over its validity: a write the model did not
      // ask for, which took the kind's 30 days and made a memory that never expired expire.
      await f.store.put({
        namespace: ['memories', 'l4'],
        key: 'k1',
        kind: 'timed',
        value: { content: 'User loves ramen' },
        ttl: null,
      });
      await f.store.put({
        namespace: ['memories', 'l4'],
        key: 'k2',
        kind: 'timed',
        value: { content: 'User really loves ramen' },
        ttl: HOUR,
        validFrom: '2020-01-01T00:00:00Z',
      });
      model.chat = () => ({ toolCalls: [{ name: 'delete_memory', arguments: { id: 'm2' } }] });
      expect(await pass()).toMatchObject({ merged: 1 });
      expect(await expiries('l4')).toEqual({ k1: null });
    });
  });

  describe('validity', () => {
    const putFrom = (user: string, key: string, content: string, validFrom: string) =>
      f.store.put({ namespace: ['memories', user], key, value: { content }, validFrom });
    const heldAt = async (user: string, asOf: string) =>
      (await f.store.search({ namespacePrefix: ['memories', user], asOf })).map((i) => i.key).sort();

    it('a rewrite holds from the earliest memory it takes in', async () => {
      await putFrom('h1', 'k1', 'User loves ramen', '2026-06-01T00:00:00Z');
      await putFrom('h1', 'k2', 'User really loves ramen', '2025-01-01T00:00:00Z');
      model.chat = () => mergeFirst;
      expect(await pass()).toMatchObject({ merged: 1 });
      expect(await heldAt('h1', '2025-10-01T00:00:00Z')).toEqual(['k1']);
    });

    it('a repeat deleted beside a memory kept as it is hands it its validity', async () => {
      await putFrom('h2', 'k1', 'User loves ramen', '2026-06-01T00:00:00Z');
      await putFrom('h2', 'k2', 'User really loves ramen', '2025-01-01T00:00:00Z');
      model.chat = () => ({ toolCalls: [{ name: 'delete_memory', arguments: { id: 'm2' } }] });
      expect(await pass()).toMatchObject({ merged: 1 });
      expect(await heldAt('h2', '2025-10-01T00:00:00Z')).toEqual(['k1']);
    });
  });

  it('stops sweeping between batches when the pass is aborted', async () => {
    for (const key of ['x1', 'x2', 'x3'])
      await f.store.put({ namespace: ['memories', 's1'], key, value: { content: key }, ttl: 1 });
    await new Promise((r) => setTimeout(r, 20));
    // One expiry a batch, and the scheduler closing after the first.
    const stopping = new AbortController();
    const store = new Proxy(f.memories, {
      get(target, prop, receiver) {
        if (prop !== 'sweepExpired') return Reflect.get(target, prop, receiver) as unknown;
        return async (actor: string) => {
          const swept = await target.sweepExpired(actor, 1);
          stopping.abort();
          return swept;
        };
      },
    });
    await expect(consolidate(store, 'consolidation:test', silentLog, merge, stopping.signal)).rejects.toThrow();
    const left = await f.db.query(`select 1 from ${tables(f.memories.schema).memories} where namespace = $1`, [
      ['memories', 's1'],
    ]);
    expect(left.rowCount).toBe(2);
  });
});
