import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EngramClient } from '../src/sdk/client.js';
import { ConflictError, InputError } from '../src/errors.js';
import { backends, openStore, TestEmbedder, type StoreFixture } from './helpers/backends.js';
import {
  deleteKeys,
  startHarness,
  TEST_DATABASE_URL,
  TEST_REDIS_URL,
  uniqueName,
  type Harness,
} from './helpers/harness.js';
import { StallProxy } from './helpers/stall-proxy.js';
import { tables } from '../src/store/sql.js';

/** The HTTP API over a real runtime: Postgres, or PGlite when DATABASE_URL is unset. */
describe.each(backends)('store HTTP API on $name', (backend) => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({
      roles: ['api'],
      env: backend.name === 'pglite' ? { DATABASE_URL: '', PGLITE_DATA_DIR: 'memory://' } : {},
    });
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

  it('put, get, search with a filter, list namespaces, history, delete', async () => {
    const ns = ['memories', 'u1'];
    const put = await call('PUT', '/v1/store/items', {
      namespace: ns,
      key: 'diet',
      value: { content: 'User is vegetarian', since: 2019 },
      actor: 'http-test',
    });
    expect(put.status).toBe(200);
    expect(put.body.item).toMatchObject({ namespace: ns, key: 'diet', version: 1, kind: 'memory', expiresAt: null });
    await call('PUT', '/v1/store/items', {
      namespace: ns,
      key: 'sport',
      value: { content: 'User plays tennis', since: 2021 },
    });

    const got = await call('GET', '/v1/store/items?namespace=memories&namespace=u1&key=diet');
    expect(got.status).toBe(200);
    expect(got.body.item.value).toEqual({ content: 'User is vegetarian', since: 2019 });
    expect((await call('GET', '/v1/store/items?namespace=memories&key=diet')).status).toBe(404);

    const search = await call('POST', '/v1/store/items/search', {
      namespacePrefix: ['memories'],
      query: 'vegetarian food',
      limit: 5,
    });
    expect(search.status).toBe(200);
    expect(search.body.items[0]).toMatchObject({ key: 'diet' });
    expect(typeof search.body.items[0].score).toBe('number');
    const filtered = await call('POST', '/v1/store/items/search', {
      namespacePrefix: ns,
      filter: { since: { $gt: 2020 } },
    });
    expect(filtered.body.items.map((i: { key: string }) => i.key)).toEqual(['sport']);

    expect((await call('POST', '/v1/store/namespaces', { prefix: ['memories'] })).body.namespaces).toEqual([ns]);
    expect((await call('POST', '/v1/store/namespaces')).body.namespaces).toEqual([ns]);

    const del = await call('DELETE', '/v1/store/items', { namespace: ns, key: 'diet' });
    expect(del).toEqual({ status: 200, body: { deleted: true } });
    const history = await call('GET', '/v1/store/items/history?namespace=memories&namespace=u1&key=diet');
    expect(history.body.history.map((e: { op: string; actor: string }) => [e.op, e.actor])).toEqual([
      ['insert', 'http-test'],
      ['delete', 'api'],
    ]);
    const page = await call('GET', '/v1/store/items/history?namespace=memories&namespace=u1&key=diet&limit=1&offset=1');
    expect(page.body.history.map((e: { op: string }) => e.op)).toEqual(['delete']);
    expect(
      (await call('GET', '/v1/store/items/history?namespace=memories&namespace=u1&key=diet&limit=lots')).status,
    ).toBe(400);
  });

  it('a stale ifVersion is 409, bad input is 400 with details, and nothing is written', async () => {
    const ns = ['memories', 'u2'];
    await call('PUT', '/v1/store/items', { namespace: ns, key: 'k', value: { v: 1 } });
    const stale = await call('PUT', '/v1/store/items', { namespace: ns, key: 'k', value: { v: 2 }, ifVersion: 0 });
    expect(stale.status).toBe(409);
    expect(stale.body.details.conflicts[0]).toMatchObject({ key: 'k', expected: 0, actual: 1 });

    const bad = await call('PUT', '/v1/store/items', { namespace: ['memories', ''], key: 'k', value: 'not an object' });
    expect(bad.status).toBe(400);
    expect(bad.body.error).toMatch(/namespace/);
    expect(bad.body.error).toMatch(/value/);
    expect((await call('POST', '/v1/store/batch', { nope: [] })).status).toBe(400);
    expect((await call('DELETE', '/v1/store/items')).status).toBe(400);
    expect((await call('GET', `/v1/store/items?namespace=memories&namespace=u2&key=k`)).body.item.value).toEqual({
      v: 1,
    });
  });

  it('batch: writes then reads, results in op order', async () => {
    const ns = ['memories', 'u3'];
    const res = await call('POST', '/v1/store/batch', {
      ops: [
        { op: 'put', namespace: ns, key: 'a', value: { content: 'User likes green tea' } },
        { op: 'get', namespace: ns, key: 'a' },
        { op: 'search', namespacePrefix: ns, query: 'tea' },
      ],
    });
    expect(res.status).toBe(200);
    expect(res.body.results[0]).toMatchObject({ key: 'a', version: 1 });
    expect(res.body.results[1]).toMatchObject({ key: 'a' });
    expect(res.body.results[2].map((i: { key: string }) => i.key)).toEqual(['a']);
  });
});

/** With STORE_REFRESH_TTL_ON_READ=false, so a read refreshes only when it says `refreshTtl`. */
describe.each(backends)('store TTL refresh over HTTP on $name', (backend) => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({
      roles: ['api'],
      env: {
        STORE_REFRESH_TTL_ON_READ: 'false',
        ...(backend.name === 'pglite' ? { DATABASE_URL: '', PGLITE_DATA_DIR: 'memory://' } : {}),
      },
    });
  });
  afterAll(async () => h?.stop());

  const call = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(`${h.url}${path}`, {
      method,
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    return { status: res.status, body: (await res.json()) as Record<string, any> };
  };
  /** Moves the item's expiry to a minute from now, as if it had been put 59 minutes ago. */
  const age = (ns: string[]) =>
    h.runtime.db.query(
      `update ${tables(h.runtime.store.schema).memories} set expires_at = now() + interval '1 minute' where namespace = $1`,
      [ns],
    );
  const renewed = async (ns: string[]) =>
    (
      await h.runtime.db.query<{ ok: boolean }>(
        `select expires_at >= now() + interval '59 minutes' as ok from ${tables(h.runtime.store.schema).memories} where namespace = $1`,
        [ns],
      )
    ).rows[0]?.ok;

  it('GET, search and batch carry refreshTtl; without it the configured default (off) applies', async () => {
    const ns = ['memories', 'ttl'];
    const item = `/v1/store/items?namespace=memories&namespace=ttl&key=k`;
    await call('PUT', '/v1/store/items', {
      namespace: ns,
      key: 'k',
      value: { content: 'User is in Paris this week' },
      ttl: 3_600_000,
    });
    await age(ns);
    expect((await call('GET', item)).status).toBe(200);
    expect(
      (await call('POST', '/v1/store/items/search', { namespacePrefix: ns, query: 'Paris' })).body.items,
    ).toHaveLength(1);
    expect(await renewed(ns)).toBe(false);

    const got = await call('GET', `${item}&refreshTtl=true`);
    expect(await renewed(ns)).toBe(true);
    expect(new Date(got.body.item.expiresAt).getTime()).toBeGreaterThan(Date.now() + 58 * 60_000);
    await age(ns);
    await call('GET', `${item}&refreshTtl=false`);
    expect(await renewed(ns)).toBe(false);
    await call('POST', '/v1/store/items/search', { namespacePrefix: ns, query: 'Paris', refreshTtl: true });
    expect(await renewed(ns)).toBe(true);
    await age(ns);
    expect(
      (await call('POST', '/v1/store/batch', { ops: [{ op: 'get', namespace: ns, key: 'k', refreshTtl: true }] }))
        .status,
    ).toBe(200);
    expect(await renewed(ns)).toBe(true);
  });

  it('a refreshTtl that is not a boolean is a 400 naming it', async () => {
    const bad = await call('GET', '/v1/store/items?namespace=memories&namespace=ttl&key=k&refreshTtl=yes');
    expect(bad.status).toBe(400);
    expect(bad.body.error).toMatch(/refreshTtl/);
    const search = await call('POST', '/v1/store/items/search', { namespacePrefix: ['memories'], refreshTtl: 'true' });
    expect(search.status).toBe(400);
    expect(search.body.error).toMatch(/refreshTtl/);
    expect(search.body.error).toMatch(/expected boolean/);
    const batch = await call('POST', '/v1/store/batch', {
      ops: [{ op: 'get', namespace: ['memories'], key: 'k', refreshTtl: 1 }],
    });
    expect(batch.status).toBe(400);
    expect(batch.body.error).toMatch(/refreshTtl/);
    // History is no read of the item: it takes no refreshTtl.
    expect((await call('GET', '/v1/store/items/history?namespace=memories&key=k&refreshTtl=true')).status).toBe(400);
  });
});

describe.each(backends)('store SDK on $name', (backend) => {
  let f: StoreFixture;
  let client: EngramClient;
  // The clients' queues write their meta keys under this prefix: removed after the suite.
  const prefix = `engram-test-${uniqueName('sdk')}`;
  beforeAll(async () => {
    f = await openStore(backend);
    client = new EngramClient({
      redisUrl: TEST_REDIS_URL,
      prefix,
      db: f.db,
      schema: f.schema,
      embedder: new TestEmbedder(),
      store: { actor: 'sdk-test' },
    });
  });
  afterAll(async () => {
    await client?.close();
    await f?.close();
    await deleteKeys(TEST_REDIS_URL, prefix);
  });

  it('offers LangGraph call shapes over the same schemas', async () => {
    const ns = ['sdk', 'u1'];
    const item = await client.store.put(ns, 'k', { content: 'User likes ramen' }, { ttl: 60_000, kind: 'note' });
    expect(item).toMatchObject({ namespace: ns, key: 'k', kind: 'note', version: 1 });
    expect(item.expiresAt).toBeInstanceOf(Date);
    expect(await client.store.get(ns, 'k')).toMatchObject({ value: { content: 'User likes ramen' } });
    expect((await client.store.search(['sdk'], { query: 'ramen' })).map((i) => i.key)).toEqual(['k']);
    expect(await client.store.listNamespaces({ prefix: ['sdk'] })).toEqual([ns]);
    expect((await client.store.batch([{ op: 'get', namespace: ns, key: 'k' }]))[0]).toMatchObject({ key: 'k' });
    await expect(client.store.put(ns, 'k', { content: 'x' }, { ifVersion: 5 })).rejects.toBeInstanceOf(ConflictError);
    expect(await client.store.delete(ns, 'k', { ifVersion: 1 })).toBe(true);
    expect((await client.store.history(ns, 'k')).map((h) => h.actor)).toEqual(['sdk-test', 'sdk-test']);
    await expect(client.store.put([], 'k', {})).rejects.toBeInstanceOf(InputError);
  });

  it('get and search take refreshTtl; the client default is store.refreshTtlOnRead (true)', async () => {
    const ns = ['sdk', 'ttl'];
    const t = tables(f.memories.schema);
    const age = () =>
      f.db.query(`update ${t.memories} set expires_at = now() + interval '1 minute' where namespace = $1`, [ns]);
    const renewed = async () =>
      (
        await f.db.query<{ ok: boolean }>(
          `select expires_at >= now() + interval '59 minutes' as ok from ${t.memories} where namespace = $1`,
          [ns],
        )
      ).rows[0]?.ok;
    await client.store.put(ns, 'k', { content: 'User likes ramen' }, { ttl: 3_600_000 });
    await age();
    await client.store.get(ns, 'k', { refreshTtl: false });
    await client.store.search(ns, { query: 'ramen', refreshTtl: false });
    expect(await renewed()).toBe(false);
    await client.store.get(ns, 'k');
    expect(await renewed()).toBe(true);

    const off = new EngramClient({
      redisUrl: TEST_REDIS_URL,
      prefix,
      db: f.db,
      schema: f.schema,
      embedder: new TestEmbedder(),
      store: { refreshTtlOnRead: false },
    });
    try {
      await age();
      await off.store.get(ns, 'k');
      expect(await renewed()).toBe(false);
      await off.store.search(ns, { query: 'ramen', refreshTtl: true });
      expect(await renewed()).toBe(true);
    } finally {
      await off.close();
    }
  });

  it('without a database the store and search say what they need; search rejects rather than throws', async () => {
    const bare = new EngramClient({ redisUrl: TEST_REDIS_URL, prefix });
    try {
      expect(() => bare.store).toThrow(/databaseUrl/);
      // search returns a promise: a caller's .catch must see the error, not a throw past it.
      const caught = await bare.search({ namespace: ['memories', 'u1'], query: 'diet' }).catch((err: unknown) => err);
      expect(caught).toBeInstanceOf(InputError);
      expect((caught as Error).message).toMatch(/search needs `databaseUrl`/);
    } finally {
      await bare.close();
    }
  });
});

/** Postgres gone while the API runs (a proxy in front of it stops): the answer names Postgres. */
describe('store HTTP API with Postgres down', () => {
  const proxy = new StallProxy(new URL(TEST_DATABASE_URL));
  let port: number;
  let h: Harness;
  beforeAll(async () => {
    const url = await proxy.start();
    port = Number(new URL(url).port);
    h = await startHarness({ roles: ['api'], env: { DATABASE_URL: url } });
  });
  afterAll(async () => {
    // Back up first, so that stopping drops the test's schema through it.
    if (!proxy.listening) await proxy.start(port);
    await h?.stop();
    await proxy.stop();
  });

  const call = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(`${h.url}${path}`, {
      method,
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    return { status: res.status, body: (await res.json()) as Record<string, any> };
  };

  it('answers 503 saying Postgres is not reachable (it blamed Redis), and serves again once it is back', async () => {
    const ns = ['memories', 'down'];
    expect(
      (await call('PUT', '/v1/store/items', { namespace: ns, key: 'k', value: { content: 'User likes tea' } })).status,
    ).toBe(200);
    await proxy.stop();
    try {
      for (const [method, path, body] of [
        ['PUT', '/v1/store/items', { namespace: ns, key: 'k2', value: { content: 'User likes coffee' } }],
        ['GET', '/v1/store/items?namespace=memories&namespace=down&key=k', undefined],
        ['POST', '/v1/store/items/search', { namespacePrefix: ns, query: 'tea' }],
        ['GET', '/v1/memories/search?namespace=memories&namespace=down&query=tea', undefined],
      ] as const) {
        expect(await call(method, path, body)).toEqual({
          status: 503,
          body: { error: 'the memory store (Postgres) is not reachable; retry later' },
        });
      }
    } finally {
      await proxy.start(port);
    }
    expect((await call('GET', '/v1/store/items?namespace=memories&namespace=down&key=k')).body.item.value).toEqual({
      content: 'User likes tea',
    });
  });
});
