import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defaultKinds, defineKind, type MemoryKind, type MemoryKindInput } from '../src/memory/kinds.js';
import { reflectThread } from '../src/memory/reflect.js';
import { foodieModel } from './fake-model/foodie.js';
import {
  apiCall,
  deleteKeys,
  runtimeBackends,
  sdkClient,
  startHarness,
  TEST_REDIS_URL,
  waitFor,
  type Harness,
} from './helpers/harness.js';

/** Undo from history: an item back to a version, and everything one reflection job changed. */
describe.each(runtimeBackends)('revert on $name', (backend) => {
  let h: Harness;
  const ns = ['memories', 'u1'];
  beforeAll(async () => {
    h = await startHarness({ roles: ['api'], chat: foodieModel, env: backend.env });
    expect(h.runtime.db.backend).toBe(backend.name);
  });
  afterAll(async () => h?.stop());

  const call = apiCall(() => h);
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
    expect(await h.runtime.storeApi.revertChanges({ changedBy: 'tool:rewrite', namespacePrefix: ns })).toEqual({
      restored: 1,
      deleted: 0,
    });
    const undone = await h.runtime.storeApi.get({ namespace: ns, key: 'k' });
    expect(undone).toMatchObject({ version: 5, value: { content: 'in Lisbon this week' } });
    expect(undone?.expiresAt).toBeInstanceOf(Date);
  });
});

/**
 * A temporal kind's invalidation is a version like any other: reverting to it, or undoing a
 * change that made the fact hold again, puts back the fact as it was then, no longer holding
 * since its invalidation, over HTTP and through the SDK.
 */
describe.each(runtimeBackends)('reverting to an invalidation on $name', (backend) => {
  let h: Harness;
  const ns = ['memories', 'u2'];
  const january = '2026-01-10T18:00:00.000Z';
  const march = '2026-03-02T09:30:00.000Z';
  let pasta: string;
  let ramen: string;
  beforeAll(async () => {
    const temporal = defineKind({ ...(defaultKinds[0] as MemoryKind), temporal: true } as MemoryKindInput);
    h = await startHarness({ roles: ['api'], chat: foodieModel, env: backend.env, runtime: { kinds: [temporal] } });
    const say = async (threadId: string, content: string, createdAt: string) => {
      await h.runtime.producer.enqueue({
        threadId,
        context: { userId: 'u2' },
        messages: [{ role: 'user', content, createdAt }],
      });
      return reflectThread(h.runtime.reflectDeps(), threadId, { actor: `reflection:${threadId}` });
    };
    await say('jan', 'I love ramen! I also like pasta.', january);
    expect(await say('mar', 'These days I like miso ramen, and I no longer like pasta.', march)).toMatchObject({
      invalidated: 2,
    });
    const held = await h.runtime.storeApi.search({ namespacePrefix: ns, asOf: '2026-02-01T00:00:00Z', limit: 10 });
    pasta = held.find((m) => m.value.content === 'User likes pasta')!.key;
    ramen = held.find((m) => m.value.content === 'User loves ramen')!.key;
  });
  afterAll(async () => h?.stop());

  const call = apiCall(() => h);
  const holdsNow = async (key: string) =>
    (await h.runtime.storeApi.search({ namespacePrefix: ns, limit: 10 })).some((m) => m.key === key);
  /** A fact made to hold again by a put of its document, as an application editing it would. */
  const revive = async (key: string, actor: string) => {
    const item = await h.runtime.storeApi.get({ namespace: ns, key });
    return call('PUT', '/v1/store/items', { namespace: ns, key, value: item!.value, actor });
  };

  it('leaves the fact invalid, from when it was, after a revert to its invalidation (HTTP)', async () => {
    const history = (await h.runtime.storeApi.history({ namespace: ns, key: pasta })).map((r) => [r.op, r.version]);
    expect(history).toEqual([
      ['insert', 1],
      ['invalidate', 2],
    ]);
    expect((await revive(pasta, 'app:revive')).body.item).toMatchObject({ version: 3, invalidAt: null });
    expect(await holdsNow(pasta)).toBe(true);

    const back = await call('POST', '/v1/store/items/revert', { namespace: ns, key: pasta, version: 2 });
    expect(back.status).toBe(200);
    expect(back.body.item).toMatchObject({ version: 4, validFrom: january, invalidAt: march });
    expect(await holdsNow(pasta)).toBe(false);
    const asOf = await h.runtime.storeApi.search({ namespacePrefix: ns, asOf: '2026-02-01T00:00:00Z', limit: 10 });
    expect(asOf.some((m) => m.key === pasta)).toBe(true);
    // History says so, and a revert to the revert's own version is an invalidation too.
    const rows = (await call('GET', `/v1/store/items/history?namespace=memories&namespace=u2&key=${pasta}`)).body
      .history;
    expect(rows.map((r: any) => [r.version, r.actor, r.invalidAt])).toEqual([
      [1, 'reflection:jan', null],
      [2, 'reflection:mar', march],
      [3, 'app:revive', null],
      [4, 'revert:api', march],
    ]);
    // Version 1 held: reverting to it makes the fact hold again.
    const first = await call('POST', '/v1/store/items/revert', { namespace: ns, key: pasta, version: 1 });
    expect(first.body.item).toMatchObject({ version: 5, invalidAt: null });
    expect(await holdsNow(pasta)).toBe(true);
    expect(
      (await call('POST', '/v1/store/items/revert', { namespace: ns, key: pasta, version: 4 })).body.item,
    ).toMatchObject({ version: 6, invalidAt: march });
  });

  it('puts the invalidation back when undoing a change that made the fact hold again (HTTP)', async () => {
    // Ramen, invalidated by the same conversation as pasta and untouched since.
    expect((await revive(ramen, 'app:revive-2')).body.item).toMatchObject({ version: 3, invalidAt: null });
    const undo = await call('POST', '/v1/revert', { changedBy: 'app:revive-2' });
    expect(undo).toEqual({ status: 200, body: { restored: 1, deleted: 0 } });
    const item = await h.runtime.storeApi.get({ namespace: ns, key: ramen });
    expect(item).toMatchObject({ version: 4, invalidAt: new Date(march), validFrom: new Date(january) });
    expect(await holdsNow(ramen)).toBe(false);
  });

  it.skipIf(backend.name !== 'postgres')('does the same through the SDK', async () => {
    const engram = sdkClient(h);
    try {
      expect(await engram.store.revert(ns, ramen, 1)).toMatchObject({ invalidAt: null });
      expect(await holdsNow(ramen)).toBe(true);
      expect(await engram.store.revert(ns, ramen, 2)).toMatchObject({ invalidAt: new Date(march) });
      expect(await holdsNow(ramen)).toBe(false);
      await revive(ramen, 'app:revive-3');
      expect(await engram.store.revertChanges('app:revive-3')).toEqual({ restored: 1, deleted: 0 });
      expect(await engram.store.get(ns, ramen)).toMatchObject({ invalidAt: new Date(march) });
      expect(await holdsNow(ramen)).toBe(false);
    } finally {
      await engram.close();
    }
  });
});

/**
 * A memory tool records the same actor (`tool:manage_memory`) whoever it wrote for: undoing it
 * must name whose writes, under any key, and a tenant's key stays inside its tenant.
 */
describe("undoing a memory tool's writes", () => {
  let h: Harness;
  const ACME = 'acme-key-0123456789abcdef';
  const OPERATOR = 'operator-key-0123456789abcdef';
  const kindsFile = new URL('./fixtures/mcp-kinds.yaml', import.meta.url).pathname;
  beforeAll(async () => {
    h = await startHarness({
      roles: ['api'],
      env: {
        ENGRAM_KINDS_FILE: kindsFile,
        API_KEYS: `acme:${ACME},*:${OPERATOR}`,
        ADMIN_PASSWORD: 'admin-password-123',
      },
    });
  });
  afterAll(async () => h?.stop());

  const as = (key: string) => async (path: string, body: unknown) => {
    const res = await fetch(`${h.url}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
      body: JSON.stringify(body),
    });
    return { status: res.status, body: (await res.json()) as Record<string, any> };
  };
  const [acme, operator] = [as(ACME), as(OPERATOR)];
  const remember = async (post: typeof acme, context: Record<string, string>, content: string) =>
    expect(
      (
        await post('/v1/tools/apply', {
          context,
          op: { op: 'insert', kind: 'memory', document: { content } },
          actor: 'tool:manage_memory',
        })
      ).body,
    ).toMatchObject({ status: 'applied' });
  const users = async () =>
    (await h.runtime.storeApi.search({ namespacePrefix: [], limit: 10, refreshTtl: false }))
      .map((m) => m.namespace.join('/'))
      .sort();

  it('refuses an undo by a tool actor that names no namespacePrefix, and undoes one user when it does', async () => {
    await remember(acme, { userId: 'u1' }, 'User likes tea');
    await remember(acme, { userId: 'u2' }, 'User likes coffee');
    await remember(operator, { tenant: 'globex', userId: 'u3' }, 'User likes cocoa');
    const everyone = ['acme/memories/u1', 'acme/memories/u2', 'globex/memories/u3'];
    expect(await users()).toEqual(everyone);

    // Neither an operator's key nor a tenant's (whose prefix would default to the whole tenant).
    for (const post of [operator, acme]) {
      for (const namespacePrefix of [undefined, []]) {
        const refused = await post('/v1/revert', { changedBy: 'tool:manage_memory', namespacePrefix });
        expect(refused.status, JSON.stringify([post === acme, namespacePrefix, refused.body])).toBe(400);
        expect(refused.body.error).toContain(
          '"tool:manage_memory" is a memory tool\'s actor, the same for every user it wrote for: name whose changes to undo with namespacePrefix',
        );
      }
    }
    expect(await users()).toEqual(everyone);

    expect(
      await acme('/v1/revert', { changedBy: 'tool:manage_memory', namespacePrefix: ['acme', 'memories', 'u1'] }),
    ).toEqual({ status: 200, body: { restored: 0, deleted: 1 } });
    expect(await users()).toEqual(['acme/memories/u2', 'globex/memories/u3']);
    // A tenant's key stays inside its tenant; an operator's reaches the one it names.
    expect(
      (await acme('/v1/revert', { changedBy: 'tool:manage_memory', namespacePrefix: ['globex', 'memories', 'u3'] }))
        .status,
    ).toBe(403);
    expect(
      await operator('/v1/revert', { changedBy: 'tool:manage_memory', namespacePrefix: ['globex', 'memories', 'u3'] }),
    ).toEqual({ status: 200, body: { restored: 0, deleted: 1 } });
    expect(await users()).toEqual(['acme/memories/u2']);
  });

  it('refuses the same through the SDK, naming namespacePrefix', async () => {
    const engram = sdkClient(h);
    try {
      await expect(engram.store.revertChanges('tool:manage_memory')).rejects.toThrow(
        /"tool:manage_memory" is a memory tool's actor.*namespacePrefix/,
      );
      expect(await users()).toEqual(['acme/memories/u2']);
    } finally {
      await engram.close();
    }
  });

  it("refuses an undo by the SDK store's own configured actor without a prefix, as by a default one", async () => {
    const engram = sdkClient(h, { store: { actor: 'chat-app' } });
    try {
      for (const user of ['c1', 'c2'])
        await engram.store.put(['chat', user], 'note', { content: `note of ${user}` }, { kind: 'memory' });
      const left = async () =>
        (await h.runtime.storeApi.search({ namespacePrefix: ['chat'], limit: 10, refreshTtl: false }))
          .map((m) => m.namespace.join('/'))
          .sort();
      expect(await left()).toEqual(['chat/c1', 'chat/c2']);
      for (const [changedBy, what] of [
        ['chat-app', "this store's default actor"],
        ['revert:chat-app', "a revert by this store's default actor"],
      ] as const)
        await expect(engram.store.revertChanges(changedBy)).rejects.toThrow(
          new RegExp(`"${changedBy}" is ${what}.*namespacePrefix`),
        );
      expect(await left()).toEqual(['chat/c1', 'chat/c2']);
      expect(await engram.store.revertChanges('chat-app', { namespacePrefix: ['chat', 'c1'] })).toEqual({
        restored: 0,
        deleted: 1,
      });
      expect(await left()).toEqual(['chat/c2']);
    } finally {
      await engram.close();
    }
  });

  it("refuses an undo by a store's default actor or a revert by it without a prefix; an application's own actor needs none", async () => {
    const put = (ns: string[], key: string, actor?: string) =>
      fetch(`${h.url}/v1/store/items`, {
        method: 'PUT',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${OPERATOR}` },
        body: JSON.stringify({ namespace: ns, key, value: { content: key }, ...(actor ? { actor } : {}) }),
      });
    for (const user of ['d1', 'd2']) expect((await put(['defaults', user], 'note')).status).toBe(200);
    const stored = async () =>
      (await h.runtime.storeApi.search({ namespacePrefix: ['defaults'], limit: 10, refreshTtl: false }))
        .map((m) => m.namespace.join('/'))
        .sort();
    expect(await stored()).toEqual(['defaults/d1', 'defaults/d2']);

    for (const [changedBy, what] of [
      ['api', "the HTTP store's default actor"],
      ['sdk', "the SDK store's default actor"],
      ['admin', "the memory browser's actor"],
      ['api:*', "an API key's default actor"],
      ['api:acme', "an API key's default actor"],
      ['revert:api:*', "a revert by an API key's default actor"],
    ]) {
      const refused = await operator('/v1/revert', { changedBy });
      expect(refused.status, changedBy).toBe(400);
      expect(refused.body.error).toContain(`"${changedBy}" is ${what}, the same for every user it wrote for`);
    }
    expect(await stored()).toEqual(['defaults/d1', 'defaults/d2']);

    expect(await operator('/v1/revert', { changedBy: 'api:*', namespacePrefix: ['defaults', 'd1'] })).toEqual({
      status: 200,
      body: { restored: 0, deleted: 1 },
    });
    expect(await stored()).toEqual(['defaults/d2']);

    // An actor the application chose names its own change set: no prefix asked.
    expect((await put(['defaults', 'd3'], 'note', 'import-42')).status).toBe(200);
    expect(await operator('/v1/revert', { changedBy: 'api:*:import-42' })).toEqual({
      status: 200,
      body: { restored: 0, deleted: 1 },
    });
    expect(await stored()).toEqual(['defaults/d2']);
  });
  it("stamps a tenant's imported history as the tenant's, so it cannot claim another's job", async () => {
    const at = '2026-12-01T00:00:00.000Z';
    const file = (ns: string[], key: string, history: { actor: string; threadId: string | null }[]) =>
      [
        { type: 'export', format: 1, exportedAt: at, scope: { namespacePrefix: ns } },
        {
          type: 'item',
          ...{ namespace: ns, key, kind: 'memory', value: { content: 'forged' }, version: history.length },
          ...{ createdAt: at, updatedAt: at, expiresAt: null, ttlMs: null, validFrom: at, invalidAt: null },
          fields: [{ text: 'forged', field: '$' }],
        },
        ...history.map((h, i) => ({
          type: 'history',
          ...{ namespace: ns, key, kind: 'memory', op: i ? 'update' : 'insert', version: i + 1 },
          ...{ before: i ? { content: 'forged' } : null, after: { content: 'forged' }, at, validFrom: at },
          ...h,
        })),
      ]
        .map((l) => JSON.stringify(l))
        .join('\n');
    const send = (key: string, body: string) =>
      fetch(`${h.url}/v1/import`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-ndjson', authorization: `Bearer ${key}` },
        body,
      }).then(async (res) => ({ status: res.status, body: await res.json() }));
    const actors = async (ns: string[], key: string) =>
      (await h.runtime.storeApi.history({ namespace: ns, key })).map((e) => [e.actor, e.threadId]);

    const ns = ['acme', 'memories', 'forger'];
    expect(
      await send(
        ACME,
        file(ns, 'k', [
          { actor: 'reflection:2@1796671218705', threadId: 'globex/t9' },
          { actor: 'api:acme:import-7', threadId: 'acme/t1' },
        ]),
      ),
    ).toEqual({ status: 200, body: { items: 1, history: 2, expired: 0 } });
    expect(await actors(ns, 'k')).toEqual([
      ['api:acme:reflection:2@1796671218705', 'acme/globex/t9'],
      ['api:acme:import-7', 'acme/t1'],
    ]);
    // An operator's undo of that job meets none of the tenant's rows.
    expect(await operator('/v1/revert', { changedBy: 'reflection:2@1796671218705' })).toEqual({
      status: 200,
      body: { restored: 0, deleted: 0 },
    });
    // An operator's import is the deployment's own: its actors are kept, so an undo finds them.
    const theirs = ['globex', 'memories', 'moved'];
    expect((await send(OPERATOR, file(theirs, 'k', [{ actor: 'reflection:9@1', threadId: null }]))).status).toBe(200);
    expect(await actors(theirs, 'k')).toEqual([['reflection:9@1', null]]);
  });
});
