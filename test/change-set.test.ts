import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ChangeSet, Write } from '../src/store/change-set.js';
import { tables } from '../src/store/sql.js';
import type { Namespace } from '../src/store/types.js';
import { fakeEmbedding } from './fake-model/embedding.js';
import { backends, openStore, type StoreFixture } from './helpers/backends.js';
import { TEST_DIMENSIONS } from './helpers/harness.js';

/**
 * The change-set writer's one rule set (src/store/change-set.ts), asserted through each kind of
 * writer that reaches it: the store API (puts, deletes), a reflection (a change with a thread
 * cursor), the prompt optimizer's shape (a change with an idempotency key) and the sweeper.
 */
describe.each(backends)('the change-set writer on $name', (backend) => {
  let f: StoreFixture;
  beforeAll(async () => {
    f = await openStore(backend);
  });
  afterAll(async () => f?.close());

  const put = (namespace: Namespace, key: string, content: string, extra: Partial<Write> = {}): Write => ({
    op: 'put',
    namespace,
    key,
    kind: 'memory',
    value: { content },
    fields: [{ field: '$', text: content, vector: fakeEmbedding(content, TEST_DIMENSIONS) }],
    ttl: null,
    ...extra,
  });
  /** A reflection's change: its writes with the thread's cursor moving from `expected` to `next`. */
  const reflection = (threadId: string, expected: string | null, next: string, writes: Write[]): ChangeSet => ({
    actor: `reflection:${threadId}`,
    threadId,
    once: { cursor: { threadId, expected, next } },
    writes,
  });
  const history = async (namespace: Namespace, key: string) =>
    (await f.memories.history(namespace, key)).map((h) => [h.op, h.version, h.before, h.after]);
  /** Moves an item's expiry into the past on the database's clock, as if its TTL had run out. */
  const expire = (namespace: Namespace, key: string) =>
    f.db.query(
      `update ${tables(f.schema).memories} set expires_at = now() - interval '1 second' where namespace = $1 and key = $2`,
      [namespace, key],
    );

  it('an expired item written by a reflection and by the store API gets the same history', async () => {
    const viaApi = ['rules', 'expiry-api'];
    const viaReflection = ['rules', 'expiry-reflection'];
    for (const ns of [viaApi, viaReflection]) {
      await f.store.put({ namespace: ns, key: 'profile:p', value: { content: 'in Paris' }, ttl: 3_600_000 });
      await expire(ns, 'profile:p');
    }
    await f.store.put({ namespace: viaApi, key: 'profile:p', value: { content: 'in Rome' } });
    const applied = await f.memories.apply(
      reflection('rules-expiry', null, '1-0', [put(viaReflection, 'profile:p', 'in Rome', { ifVersion: 0 })]),
    );
    expect(applied).toMatchObject({ status: 'applied', counts: { inserted: 1, updated: 0, expired: 1 } });

    // The expiry takes the expired documents with it; versions and ops stay, so the revived
    // item's version follows them.
    const expected = [
      ['insert', 1, null, null],
      ['expire', 1, null, null],
      ['insert', 2, null, { content: 'in Rome' }],
    ];
    expect(await history(viaApi, 'profile:p')).toEqual(expected);
    expect(await history(viaReflection, 'profile:p')).toEqual(expected);
    for (const ns of [viaApi, viaReflection]) {
      // Revived with a new creation time, no TTL (the put gave none), counted once.
      const item = await f.memories.get(ns, 'profile:p');
      expect(item).toMatchObject({ version: 2, expiresAt: null });
      expect(item!.createdAt.getTime()).toBe(item!.updatedAt.getTime());
      expect(await f.memories.listNamespaces({ prefix: ns, limit: 10, offset: 0 })).toEqual([ns]);
    }
  });

  it('a delete of an expired item records its expiry and deletes nothing live; the sweeper then finds none', async () => {
    const ns = ['rules', 'expired-delete'];
    await f.store.put({ namespace: ns, key: 'k', value: { content: 'gone soon' }, ttl: 3_600_000 });
    await expire(ns, 'k');
    expect(await f.store.delete({ namespace: ns, key: 'k' })).toBe(false);
    expect(await history(ns, 'k')).toEqual([
      ['insert', 1, null, null],
      ['expire', 1, null, null],
    ]);
    expect(await f.memories.sweepExpired('sweeper')).toBe(0);
  });

  it("the sweeper's expiry takes every document of the key's history, and only that key's", async () => {
    const ns = ['rules', 'expired-history'];
    await f.store.put({ namespace: ns, key: 'k', value: { content: 'lives in Oslo' }, ttl: 3_600_000 });
    await f.store.put({ namespace: ns, key: 'k', value: { content: 'lives in Bergen' }, ttl: 3_600_000 });
    await f.store.put({ namespace: ns, key: 'kept', value: { content: 'likes tea' } });
    await expire(ns, 'k');
    expect(await f.memories.sweepExpired('sweeper')).toBe(1);

    expect(await history(ns, 'k')).toEqual([
      ['insert', 1, null, null],
      ['update', 2, null, null],
      ['expire', 2, null, null],
    ]);
    expect(JSON.stringify(await f.db.query(`select * from ${tables(f.schema).history}`))).not.toMatch(/Oslo|Bergen/);
    expect(await history(ns, 'kept')).toEqual([['insert', 1, null, { content: 'likes tea' }]]);
    // Nothing left to go back to; a new item at the key continues the versions.
    await expect(f.store.revert({ namespace: ns, key: 'k', version: 1 })).rejects.toThrow(/version 1/);
    expect(await f.store.put({ namespace: ns, key: 'k', value: { content: 'new' } })).toMatchObject({ version: 3 });
  });

  it('versions never repeat across delete and re-insert, on every write path', async () => {
    const ns = ['rules', 'versions'];
    // The store API.
    await f.store.put({ namespace: ns, key: 'api', value: { content: 'one' } });
    await f.store.delete({ namespace: ns, key: 'api' });
    expect((await f.store.put({ namespace: ns, key: 'api', value: { content: 'two' } })).version).toBe(2);

    // A reflection: inserts, then deletes, then inserts again at the same key.
    await f.memories.apply(reflection('rules-v', null, '1-0', [put(ns, 'refl', 'one')]));
    await f.memories.apply(
      reflection('rules-v', '1-0', '2-0', [{ op: 'delete', namespace: ns, key: 'refl', ifVersion: 1 }]),
    );
    const again = await f.memories.apply(
      reflection('rules-v', '2-0', '3-0', [put(ns, 'refl', 'two', { ifVersion: 0 })]),
    );
    expect(again).toMatchObject({ status: 'applied', results: [{ op: 'put', item: { version: 2 }, inserted: true }] });

    // An idempotency-keyed writer (the prompt optimizer's shape), after the sweeper removed it.
    await f.memories.apply({
      actor: 'opt',
      once: { key: 'rules-v-1' },
      writes: [put(ns, 'keyed', 'one', { ttl: 60_000 })],
    });
    await expire(ns, 'keyed');
    expect(await f.memories.sweepExpired('sweeper')).toBe(1);
    const keyed = await f.memories.apply({
      actor: 'opt',
      once: { key: 'rules-v-2' },
      writes: [put(ns, 'keyed', 'two')],
    });
    expect(keyed).toMatchObject({ status: 'applied', results: [{ item: { version: 2 } }] });

    // A client holding version 1 from before the delete cannot overwrite any of them.
    for (const key of ['api', 'refl', 'keyed']) {
      const stale = await f.memories.apply({ actor: 'client', writes: [put(ns, key, 'stale', { ifVersion: 1 })] });
      expect(stale).toEqual({ status: 'conflict', conflicts: [{ namespace: ns, key, expected: 1, actual: 2 }] });
    }
  });

  it('a change set replayed with its idempotency key applies nothing', async () => {
    const ns = ['rules', 'replay'];
    const change: ChangeSet = { actor: 'job:1', once: { key: 'replay-1' }, writes: [put(ns, 'k', 'once')] };
    expect(await f.memories.apply(change)).toMatchObject({ status: 'applied', counts: { inserted: 1 } });
    const [version] = await f.memories.namespaceVersions([ns]);
    expect(await f.memories.apply(change)).toEqual({ status: 'duplicate' });
    // Even a replay whose writes would now conflict is "already done", not a conflict.
    expect(await f.memories.apply({ ...change, writes: [put(ns, 'k', 'again', { ifVersion: 0 })] })).toEqual({
      status: 'duplicate',
    });
    expect(await history(ns, 'k')).toEqual([['insert', 1, null, { content: 'once' }]]);
    expect(await f.memories.namespaceVersions([ns])).toEqual([version]);
    expect(await f.memories.isApplied('replay-1')).toBe(true);
    expect(await f.memories.isApplied('replay-2')).toBe(false);
  });

  it('a conflict lists every moved version (namespace, items, guards), and writes nothing', async () => {
    const a = ['rules', 'conflict-a'];
    const b = ['rules', 'conflict-b'];
    await f.memories.apply({ actor: 'seed', writes: [put(a, 'x', 'x'), put(b, 'y', 'y')] });
    const [va, vb] = await f.memories.namespaceVersions([a, b]);
    const result = await f.memories.apply({
      actor: 'late',
      once: { key: 'conflict-1' },
      reads: [
        { namespace: a, version: va! - 1 },
        { namespace: b, version: vb! },
      ],
      guards: [{ namespace: b, key: 'y', version: 7 }],
      writes: [put(a, 'x', 'x2', { ifVersion: 3 }), put(b, 'new', 'fresh')],
    });
    expect(result).toEqual({
      status: 'conflict',
      conflicts: [
        { namespace: a, expected: va! - 1, actual: va },
        { namespace: a, key: 'x', expected: 3, actual: 1 },
        { namespace: b, key: 'y', expected: 7, actual: 1 },
      ],
    });
    expect(await f.memories.get(b, 'new')).toBeNull();
    expect(await f.memories.isApplied('conflict-1')).toBe(false);
    expect(await f.memories.namespaceVersions([a, b])).toEqual([va, vb]);
  });

  it('a namespace only read is locked but neither bumped nor counted; written ones are bumped once', async () => {
    const read = ['rules', 'only-read'];
    const written = ['rules', 'written'];
    await f.memories.apply({ actor: 'seed', writes: [put(read, 'r', 'r')] });
    const [vr, vw] = await f.memories.namespaceVersions([read, written]);
    await f.memories.apply({
      actor: 'two',
      reads: [
        { namespace: read, version: vr! },
        { namespace: written, version: vw! },
      ],
      writes: [put(written, 'a', 'a'), put(written, 'b', 'b')],
    });
    expect(await f.memories.namespaceVersions([read, written])).toEqual([vr, vw! + 1]);
  });

  it('refuses a change that writes one item twice, before touching the database', async () => {
    const ns = ['rules', 'twice'];
    await expect(f.memories.apply({ actor: 'x', writes: [put(ns, 'k', 'a'), put(ns, 'k', 'b')] })).rejects.toThrow(
      /only once/,
    );
    expect(await f.memories.get(ns, 'k')).toBeNull();
  });
});
