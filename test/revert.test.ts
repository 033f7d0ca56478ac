import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineKind } from '../src/memory/kinds.js';
import { reflectThread } from '../src/memory/reflect.js';
import { foodieModel } from './fake-model/foodie.js';
import { deleteKeys, runtimeBackends, startHarness, TEST_REDIS_URL, waitFor, type Harness } from './helpers/harness.js';

/** Undo from history: an item back to a version, and everything one reflection job changed. */
describe.each(runtimeBackends)('revert on $name', (backend) => {
  let h: Harness;
  const ns = ['memories', 'u1'];
  beforeAll(async () => {
    h = await startHarness({ roles: ['api'], chat: foodieModel, env: backend.env });
    expect(h.runtime.db.backend).toBe(backend.name);
  });
  afterAll(async () => h?.stop());

  const call = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(`${h.url}${path}`, {
      method,
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: res.status, body: (await res.json()) as Record<string, any> };
  };
  const contents = async () =>
    (await call('POST', '/v1/store/items/search', { namespacePrefix: ns, limit: 50 })).body.items
      .map((i: any) => i.value.content)
      .sort();
  const say = async (threadId: string, content: string) => {
    await h.runtime.producer.enqueue({ threadId, context: { userId: 'u1' }, messages: [{ role: 'user', content }] });
    return reflectThread(h.runtime.reflectDeps(), threadId, { actor: `reflection:${threadId}` });
  };

  it('puts an item back as it was at a version, as a new version with a revert actor', async () => {
    const put = (content: string, ifVersion?: number) =>
      call('PUT', '/v1/store/items', { namespace: ['notes', 'u1'], key: 'k', value: { content }, ifVersion });
    await put('first');
    await put('second');
    await call('DELETE', '/v1/store/items', { namespace: ['notes', 'u1'], key: 'k' });

    const back = await call('POST', '/v1/store/items/revert', { namespace: ['notes', 'u1'], key: 'k', version: 1 });
    expect(back.status).toBe(200);
    expect(back.body.item).toMatchObject({ value: { content: 'first' }, version: 3 });
    const history = (await call('GET', '/v1/store/items/history?namespace=notes&namespace=u1&key=k')).body.history;
    expect(history.map((r: any) => [r.op, r.version, r.actor])).toEqual([
      ['insert', 1, 'api'],
      ['update', 2, 'api'],
      ['delete', 2, 'api'],
      ['insert', 3, 'revert:api'],
    ]);
    // A version no change produced, and a stale ifVersion, write nothing.
    expect(
      (await call('POST', '/v1/store/items/revert', { namespace: ['notes', 'u1'], key: 'k', version: 9 })).status,
    ).toBe(400);
    const stale = await call('POST', '/v1/store/items/revert', {
      namespace: ['notes', 'u1'],
      key: 'k',
      version: 2,
      ifVersion: 1,
    });
    expect(stale.status).toBe(409);
  });

  it('undoes everything one reflection changed, and refuses where a later change touched its items', async () => {
    await say('conv-1', 'I love ramen! I also like pasta.');
    await say('conv-2', 'These days I like miso ramen, and I no longer like pasta.');
    expect(await contents()).toEqual(['User loves ramen, especially miso ramen']);

    const undo = await call('POST', '/v1/revert', { changedBy: 'reflection:conv-2' });
    expect(undo.status).toBe(200);
    expect(undo.body).toEqual({ restored: 2, deleted: 0 });
    expect(await contents()).toEqual(['User likes pasta', 'User loves ramen']);

    // conv-1 inserted both; conv-2's undo then changed them again: undoing conv-1 now would
    // overwrite a later change, so it is refused whole unless forced.
    const refused = await call('POST', '/v1/revert', { changedBy: 'reflection:conv-1' });
    expect(refused.status).toBe(409);
    expect(await contents()).toEqual(['User likes pasta', 'User loves ramen']);
    const forced = await call('POST', '/v1/revert', { changedBy: 'reflection:conv-1', force: true });
    expect(forced.body).toEqual({ restored: 0, deleted: 2 });
    expect(await contents()).toEqual([]);
    expect((await call('POST', '/v1/revert', { changedBy: 'reflection:nobody' })).body).toEqual({
      restored: 0,
      deleted: 0,
    });
  });
});

/** Redis that comes back without its data starts BullMQ's job ids again at 1. */
describe('undoing a reflection after Redis lost its data', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({ roles: ['api', 'reflection'], chat: foodieModel, env: { DEBOUNCE_MS: '50' } });
  });
  afterAll(async () => h?.stop());

  /** The actor of the reflection that wrote a user's first memory, once it is written. */
  const reflectedBy = async (threadId: string, userId: string) => {
    await h.runtime.producer.enqueue({
      threadId,
      context: { userId },
      messages: [{ role: 'user', content: 'I love ramen!' }],
    });
    const [item] = await waitFor(async () => {
      const found = await h.runtime.storeApi.search({ namespacePrefix: ['memories', userId], refreshTtl: false });
      return found.length ? found : null;
    });
    const rows = await h.runtime.storeApi.history({ namespace: ['memories', userId], key: item!.key });
    return rows[0]!.actor;
  };

  it("undoes only that job's changes, not those of a later job given the same id", async () => {
    const first = await reflectedBy('lost-1', 'o1');
    // What a Redis restarted without its data leaves of this deployment's keys: none.
    await deleteKeys(TEST_REDIS_URL, h.env.ENGRAM_PREFIX);
    const second = await reflectedBy('lost-2', 'o2');
    // The same job id, BullMQ's counter having started again; the actors still differ.
    const idOf = (actor: string) => actor.slice(0, actor.indexOf('@'));
    expect(idOf(second)).toBe(idOf(first));
    expect(second).not.toBe(first);

    const memories = async (userId: string) =>
      (await h.runtime.storeApi.search({ namespacePrefix: ['memories', userId], refreshTtl: false })).length;
    const [o1, o2] = [await memories('o1'), await memories('o2')];
    expect(await h.runtime.storeApi.revertChanges({ changedBy: first })).toEqual({ restored: 0, deleted: o1 });
    expect([await memories('o1'), await memories('o2')]).toEqual([0, o2]);
  });
});

/** A kind's `ttlMs` is its retention: a revert, like any put of the kind, keeps it. */
describe('reverting a memory of a kind with a TTL', () => {
  let h: Harness;
  const hour = 3_600_000;
  beforeAll(async () => {
    const short = defineKind({
      name: 'short',
      description: 'Something true for a while',
      namespace: ['short', '{userId}'],
      schema: z.object({ content: z.string() }),
      ttlMs: hour,
    });
    h = await startHarness({ roles: ['api'], runtime: { kinds: [short] } });
  });
  afterAll(async () => h?.stop());

  it('gives the reverted version the kind’s TTL, as a put of the kind without one gets it', async () => {
    const ns = ['short', 'u6'];
    const put = (content: string) =>
      h.runtime.storeApi.put({ namespace: ns, key: 'k', kind: 'short', value: { content } });
    const first = await put('in Lisbon this week');
    expect(first.expiresAt).not.toBeNull();
    await put('in Porto this week');
    const back = await h.runtime.storeApi.revert({ namespace: ns, key: 'k', version: 1 });
    expect(back).toMatchObject({ version: 3, value: { content: 'in Lisbon this week' } });
    const left = (back.expiresAt as Date).getTime() - Date.now();
    expect(left).toBeGreaterThan(hour - 60_000);
    expect(left).toBeLessThanOrEqual(hour);
    // So does undoing the change that rewrote it: v3's document back, with the kind's TTL.
    await h.runtime.storeApi.put({
      namespace: ns,
      key: 'k',
      kind: 'short',
      value: { content: 'in Faro this week' },
      ttl: null,
      actor: 'tool:rewrite',
    });
    expect(await h.runtime.storeApi.revertChanges({ changedBy: 'tool:rewrite' })).toEqual({ restored: 1, deleted: 0 });
    const undone = await h.runtime.storeApi.get({ namespace: ns, key: 'k' });
    expect(undone).toMatchObject({ version: 5, value: { content: 'in Lisbon this week' } });
    expect(undone?.expiresAt).toBeInstanceOf(Date);
  });
});
