import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { Recall } from '../src/memory/recall.js';
import { MemoryDb } from '../src/store/memory-db.js';
import { migrate } from '../src/store/migrate.js';
import { migrations } from '../src/store/migrations/index.js';
import { StoreService, type StoreOptions } from '../src/store/store-service.js';
import type { ChangeSet, Write } from '../src/store/change-set.js';
import type { MemoryItem, Namespace } from '../src/store/types.js';
import { fakeEmbedding } from './fake-model/embedding.js';
import { backends, observedDb, openSchemaStore, silent, type Backend, type StoreFixture } from './helpers/backends.js';
import { TEST_DIMENSIONS } from './helpers/harness.js';
import { tables } from '../src/store/sql.js';

const HOUR = 3_600_000;
const vec = (text: string) => fakeEmbedding(text, TEST_DIMENSIONS);

/**
 * TTL refresh on read. Expiries are compared as the database stores them, against its own
 * now(), instead of waiting an hour: `expireIn` moves an item's expiry close, as if it had been
 * put long ago, and a refresh must move it back to now() + its TTL. One test waits for real
 * (about a second) to show a refreshed item outliving the expiry it had.
 */
describe.each(backends)('TTL refresh on read on $name', (backend) => {
  let opened: Awaited<ReturnType<Backend['open']>>;
  let f: StoreFixture;
  beforeAll(async () => {
    opened = await backend.open();
  });
  afterAll(async () => opened?.close());
  // Each test in its own schema, dropped after it.
  beforeEach(async () => {
    f = await openSchemaStore(opened.db);
  });
  afterEach(async () => f?.close());

  const storeWith = (opts: Partial<StoreOptions>, memories = f.memories) =>
    new StoreService(memories, {
      embedder: f.embedder,
      indexFields: ['$'],
      defaultTtlMs: null,
      refreshTtlOnRead: true,
      defaultKind: 'memory',
      actor: 'test',
      log: silent,
      ...opts,
    });
  /** The stored row: what a refresh changes (expires_at) and what it must leave alone. */
  const row = async (namespace: Namespace, key: string) => {
    const res = await f.db.query<{ expires_at: Date | null; ttl_ms: unknown; version: unknown; updated_at: Date }>(
      `select expires_at, ttl_ms, version, updated_at from ${tables(f.memories.schema).memories} where namespace = $1 and key = $2`,
      [namespace, key],
    );
    const r = res.rows[0]!;
    return {
      expiresAt: r.expires_at,
      ttlMs: r.ttl_ms === null ? null : Number(r.ttl_ms),
      version: Number(r.version),
      updatedAt: r.updated_at,
    };
  };
  /** As if the item had been put long ago: it now expires `interval` from the database's now(). */
  const expireIn = (namespace: Namespace, interval: string, key?: string) =>
    f.db.query(
      `update ${tables(f.memories.schema).memories} set expires_at = now() + $2::interval where namespace = $1 and ($3::text is null or key = $3)`,
      [namespace, interval, key ?? null],
    );
  /** Whether the stored expiry is at least `interval` after the database's now(). */
  const livesAtLeast = async (namespace: Namespace, key: string, interval: string) =>
    (
      await f.db.query<{ ok: boolean }>(
        `select expires_at >= now() + $3::interval as ok from ${tables(f.memories.schema).memories} where namespace = $1 and key = $2`,
        [namespace, key, interval],
      )
    ).rows[0]?.ok;
  const put = (namespace: Namespace, key: string, content: string, ttl: number | null = HOUR) =>
    f.store.put({ namespace, key, value: { content }, ttl });

  it('a get renews the expiry to now + the item TTL, and returns the renewed expiry', async () => {
    const ns = ['ttl', 'get'];
    await put(ns, 'k', 'User is in Paris this week');
    expect((await row(ns, 'k')).ttlMs).toBe(HOUR);
    await expireIn(ns, '1 minute');
    expect(await livesAtLeast(ns, 'k', '2 minutes')).toBe(false);

    const got = await f.store.get({ namespace: ns, key: 'k' });
    expect(await livesAtLeast(ns, 'k', '59 minutes')).toBe(true);
    expect(got!.expiresAt!.getTime()).toBe((await row(ns, 'k')).expiresAt!.getTime());
  });

  it('never shortens an expiry, and leaves one set within the last 1% of the TTL alone', async () => {
    const ns = ['ttl', 'shorten'];
    await put(ns, 'far', 'User is in Paris this week');
    await expireIn(ns, '2 hours', 'far');
    const far = (await row(ns, 'far')).expiresAt!.getTime();
    await f.store.get({ namespace: ns, key: 'far' });
    expect((await row(ns, 'far')).expiresAt!.getTime()).toBe(far);

    await put(ns, 'fresh', 'User is in Rome this week');
    await expireIn(ns, '59 minutes 59 seconds', 'fresh');
    const fresh = (await row(ns, 'fresh')).expiresAt!.getTime();
    await f.store.search({ namespacePrefix: ns, query: 'Rome' });
    expect((await row(ns, 'fresh')).expiresAt!.getTime()).toBe(fresh);
    await expireIn(ns, '59 minutes', 'fresh');
    await f.store.search({ namespacePrefix: ns, query: 'Rome' });
    expect(await livesAtLeast(ns, 'fresh', '59 minutes 59 seconds')).toBe(true);
  });

  it('reads of items that are not due for a refresh (fresh, or without a TTL) send no refresh statement', async () => {
    const ns = ['ttl', 'quiet'];
    await put(ns, 'fresh', 'User is in Paris this week');
    await put(ns, 'forever', 'User is vegetarian', null);
    // The store over a connection that records what it is sent.
    const sent: string[] = [];
    const recording = observedDb(f.db, (text) => sent.push(text));
    const store = storeWith({}, new MemoryDb(recording, f.memories.schema, silent));
    const refreshes = () => sent.filter((s) => /update .* set expires_at/s.test(s)).length;

    await store.get({ namespace: ns, key: 'fresh' });
    await store.get({ namespace: ns, key: 'forever' });
    await store.search({ namespacePrefix: ns, query: 'Paris' });
    await store.search({ namespacePrefix: ns });
    expect(sent.length).toBeGreaterThanOrEqual(4);
    expect(refreshes()).toBe(0);

    await expireIn(ns, '1 minute', 'fresh');
    await store.search({ namespacePrefix: ns, query: 'Paris' });
    expect(refreshes()).toBe(1);
    expect(await livesAtLeast(ns, 'fresh', '59 minutes')).toBe(true);
  });

  it('renews only the version that was read: a put in between keeps the expiry it gave', async () => {
    const ns = ['ttl', 'version'];
    await put(ns, 'k', 'User is in Paris this week');
    await expireIn(ns, '1 minute');
    const read = (await f.store.get({ namespace: ns, key: 'k', refreshTtl: false }))!;
    await put(ns, 'k', 'User is in Rome this week', 2 * HOUR);
    await expireIn(ns, '1 minute');
    const before = await row(ns, 'k');

    const [returned] = await f.memories.refreshTtl([read]);
    expect(await row(ns, 'k')).toEqual(before);
    expect(returned!.expiresAt).toEqual(read.expiresAt);
  });

  it('a refreshed item outlives the expiry it had; one read with refreshTtl: false does not', async () => {
    const ns = ['ttl', 'outlives'];
    await put(ns, 'read', 'User is in Paris this week');
    await put(ns, 'unread', 'User is in Rome this week');
    await expireIn(ns, '1 second');
    const due = Date.now() + 1_000;
    expect(await f.store.get({ namespace: ns, key: 'read' })).not.toBeNull();
    expect(await f.store.get({ namespace: ns, key: 'unread', refreshTtl: false })).not.toBeNull();
    await sleep(due + 300 - Date.now());
    expect(await f.store.get({ namespace: ns, key: 'read' })).toMatchObject({ key: 'read' });
    expect(await f.store.get({ namespace: ns, key: 'unread' })).toBeNull();
  });

  it('a batch refreshes the reads that ask for it, each result with its own renewed expiry, and keeps a missing get null', async () => {
    const ns = ['ttl', 'batch'];
    for (const key of ['a', 'b', 'c']) await put(ns, key, `User fact ${key}`);
    await expireIn(ns, '1 minute');

    const [a, missing, found, c] = (await f.store.batch([
      { op: 'get', namespace: ns, key: 'a' },
      { op: 'get', namespace: ns, key: 'nope' },
      { op: 'search', namespacePrefix: ns, filter: { content: 'User fact b' } },
      { op: 'get', namespace: ns, key: 'c', refreshTtl: false },
    ])) as [MemoryItem, null, MemoryItem[], MemoryItem];
    expect(missing).toBeNull();
    expect(found.map((i) => i.key)).toEqual(['b']);
    for (const [key, item] of [
      ['a', a],
      ['b', found[0]!],
    ] as const) {
      expect(await livesAtLeast(ns, key, '59 minutes')).toBe(true);
      expect(item.expiresAt!.getTime()).toBe((await row(ns, key)).expiresAt!.getTime());
    }
    expect(await livesAtLeast(ns, 'c', '2 minutes')).toBe(false);
    expect(c.expiresAt!.getTime()).toBe((await row(ns, 'c')).expiresAt!.getTime());
  });

  it("a batch's gets are one read statement, answered in the order asked, and the due ones share one refresh", async () => {
    const ns = ['ttl', 'gets'];
    for (const key of ['a', 'b', 'c']) await put(ns, key, `User note ${key}`);
    await expireIn(ns, '1 minute', 'a');
    await expireIn(ns, '1 minute', 'c');
    const sent: string[] = [];
    const store = storeWith(
      {},
      new MemoryDb(
        observedDb(f.db, (text) => sent.push(text)),
        f.memories.schema,
        silent,
      ),
    );
    const results = (await store.batch([
      { op: 'get', namespace: ns, key: 'c' },
      { op: 'get', namespace: ns, key: 'missing' },
      { op: 'get', namespace: ns, key: 'b' },
      { op: 'get', namespace: ns, key: 'a' },
    ])) as (MemoryItem | null)[];
    expect(results.map((r) => r?.key ?? null)).toEqual(['c', null, 'b', 'a']);
    expect(sent.map((s) => (/update .* set expires_at/s.test(s) ? 'refresh' : 'read'))).toEqual(['read', 'refresh']);
    for (const key of ['a', 'c']) expect(await livesAtLeast(ns, key, '59 minutes')).toBe(true);
    expect(results[0]!.expiresAt!.getTime()).toBe((await row(ns, 'c')).expiresAt!.getTime());
  });

  it('refreshTtl: false leaves the expiry exactly as it was, in get, search and batch', async () => {
    const ns = ['ttl', 'off'];
    await put(ns, 'k', 'User likes green tea');
    await expireIn(ns, '1 minute');
    const before = await row(ns, 'k');
    expect(await f.store.get({ namespace: ns, key: 'k', refreshTtl: false })).toMatchObject({
      expiresAt: before.expiresAt,
    });
    expect(await f.store.search({ namespacePrefix: ns, refreshTtl: false })).toHaveLength(1);
    expect(await f.store.search({ namespacePrefix: ns, query: 'tea', refreshTtl: false })).toHaveLength(1);
    const results = await f.store.batch([
      { op: 'get', namespace: ns, key: 'k', refreshTtl: false },
      { op: 'search', namespacePrefix: ns, query: 'tea', refreshTtl: false },
    ]);
    expect(results[0]).toMatchObject({ key: 'k' });
    expect(results[1]).toHaveLength(1);
    expect(await row(ns, 'k')).toEqual(before);
  });

  it('a read that does not say follows the store default (STORE_REFRESH_TTL_ON_READ); the read may override it', async () => {
    const ns = ['ttl', 'default'];
    const off = storeWith({ refreshTtlOnRead: false });
    await put(ns, 'k', 'User likes green tea');
    await expireIn(ns, '1 minute');
    const before = await row(ns, 'k');
    await off.get({ namespace: ns, key: 'k' });
    await off.search({ namespacePrefix: ns, query: 'tea' });
    await off.batch([{ op: 'get', namespace: ns, key: 'k' }]);
    expect(await row(ns, 'k')).toEqual(before);

    await off.search({ namespacePrefix: ns, query: 'tea', refreshTtl: true });
    expect(await livesAtLeast(ns, 'k', '59 minutes')).toBe(true);

    await expireIn(ns, '1 minute');
    await f.store.search({ namespacePrefix: ns }); // this store's default is true
    expect(await livesAtLeast(ns, 'k', '59 minutes')).toBe(true);
  });

  it('items without a TTL stay without one; a put records the duration, or clears it', async () => {
    const ns = ['ttl', 'none'];
    await put(ns, 'k', 'User plays tennis', null);
    expect(await f.store.get({ namespace: ns, key: 'k' })).toMatchObject({ expiresAt: null });
    expect(await f.store.search({ namespacePrefix: ns, query: 'tennis' })).toMatchObject([{ expiresAt: null }]);
    expect(await row(ns, 'k')).toMatchObject({ expiresAt: null, ttlMs: null });

    await put(ns, 'k', 'User plays tennis', 60_000);
    expect(await row(ns, 'k')).toMatchObject({ ttlMs: 60_000 });
    await put(ns, 'k', 'User plays tennis', null);
    expect(await row(ns, 'k')).toMatchObject({ expiresAt: null, ttlMs: null });
    await storeWith({ defaultTtlMs: 90_000 }).put({ namespace: ns, key: 'k', value: { content: 'User plays tennis' } });
    expect(await row(ns, 'k')).toMatchObject({ ttlMs: 90_000 });
  });

  it('a refresh is no change: version, updated_at, history and the namespace version stay', async () => {
    const ns = ['ttl', 'versions'];
    await put(ns, 'k', 'User likes green tea');
    await expireIn(ns, '1 minute');
    const before = await row(ns, 'k');
    const history = await f.store.history({ namespace: ns, key: 'k' });
    const nsVersion = await f.memories.namespaceVersions([ns]);

    await f.store.get({ namespace: ns, key: 'k' });
    await f.store.search({ namespacePrefix: ns, query: 'tea' });
    await f.store.batch([
      { op: 'get', namespace: ns, key: 'k' },
      { op: 'search', namespacePrefix: ns },
    ]);

    const after = await row(ns, 'k');
    expect(after.expiresAt!.getTime()).toBeGreaterThan(before.expiresAt!.getTime());
    expect({ ...after, expiresAt: null }).toEqual({ ...before, expiresAt: null });
    expect(await f.store.history({ namespace: ns, key: 'k' })).toEqual(history);
    expect(await f.memories.namespaceVersions([ns])).toEqual(nsVersion);
    // A writer holding the version it read still compares equal after the reads.
    expect(
      await f.store.put({
        namespace: ns,
        key: 'k',
        value: { content: 'User likes black tea' },
        ifVersion: before.version,
      }),
    ).toMatchObject({ version: 2 });
  });

  it('an expired item is never returned nor revived by a read, even one that raced its expiry', async () => {
    const ns = ['ttl', 'expired'];
    await put(ns, 'k', 'User is in Paris this week');
    const alive = (await f.store.get({ namespace: ns, key: 'k' }))!;
    await f.db.query(
      `update ${tables(f.memories.schema).memories} set expires_at = now() - interval '1 second' where namespace = $1`,
      [ns],
    );
    const before = await row(ns, 'k');

    expect(await f.store.get({ namespace: ns, key: 'k' })).toBeNull();
    expect(await f.store.search({ namespacePrefix: ns, query: 'Paris' })).toEqual([]);
    expect(await f.store.search({ namespacePrefix: ns })).toEqual([]);
    expect(
      await f.store.batch([
        { op: 'get', namespace: ns, key: 'k', refreshTtl: true },
        { op: 'search', namespacePrefix: ns, refreshTtl: true },
      ]),
    ).toEqual([null, []]);
    // The item was read alive and expired before its refresh ran: the refresh leaves it expired.
    expect(await f.memories.refreshTtl([alive])).toEqual([alive]);
    expect(await row(ns, 'k')).toEqual(before);
    expect(await f.memories.sweepExpired('sweeper')).toBe(1);
  });

  it('a search refreshes only the items it returns', async () => {
    const ns = ['ttl', 'search'];
    await put(ns, 'tea', 'User likes green tea');
    await put(ns, 'tennis', 'User plays tennis on Sundays');
    await put(ns, 'paris', 'User lives in Paris');
    await put(['ttl', 'search-other'], 'tea', 'User likes green tea');
    await expireIn(ns, '1 minute');
    await expireIn(['ttl', 'search-other'], '1 minute');

    const hits = await f.store.search({ namespacePrefix: ns, query: 'green tea', limit: 1 });
    expect(hits.map((h) => h.key)).toEqual(['tea']);
    expect(await livesAtLeast(ns, 'tea', '59 minutes')).toBe(true);
    for (const key of ['tennis', 'paris']) expect(await livesAtLeast(ns, key, '2 minutes')).toBe(false);
    expect(await livesAtLeast(['ttl', 'search-other'], 'tea', '2 minutes')).toBe(false);

    const page = await f.store.search({
      namespacePrefix: ns,
      filter: { content: { $ne: 'User likes green tea' } },
      limit: 1,
      offset: 1,
    });
    expect(page).toHaveLength(1);
    const other = page[0]!.key === 'tennis' ? 'paris' : 'tennis';
    expect(await livesAtLeast(ns, page[0]!.key, '59 minutes')).toBe(true);
    expect(await livesAtLeast(ns, other, '2 minutes')).toBe(false);
  });

  it('recall (what the application searches on its next turn) refreshes what it returns, unless told not to or configured off', async () => {
    const ns = ['ttl', 'recall'];
    await put(ns, 'tea', 'User likes green tea');
    await put(ns, 'tennis', 'User plays tennis on Sundays');
    await expireIn(ns, '1 minute');

    const hits = await new Recall(f.memories, f.embedder, true).search({ namespace: ns, query: 'green tea', limit: 1 });
    expect(hits.map((h) => h.key)).toEqual(['tea']);
    expect(hits[0]!.expiresAt!.getTime()).toBe((await row(ns, 'tea')).expiresAt!.getTime());
    expect(await livesAtLeast(ns, 'tea', '59 minutes')).toBe(true);
    expect(await livesAtLeast(ns, 'tennis', '2 minutes')).toBe(false);

    await expireIn(ns, '1 minute');
    await new Recall(f.memories, f.embedder, true).search({
      namespace: ns,
      query: 'green tea',
      limit: 2,
      refreshTtl: false,
    });
    await new Recall(f.memories, f.embedder, false).search({ namespace: ns, query: 'green tea', limit: 2 });
    for (const key of ['tea', 'tennis']) expect(await livesAtLeast(ns, key, '2 minutes')).toBe(false);
    await new Recall(f.memories, f.embedder, false).search({
      namespace: ns,
      query: 'tennis',
      limit: 1,
      refreshTtl: true,
    });
    expect(await livesAtLeast(ns, 'tennis', '59 minutes')).toBe(true);
    expect(await livesAtLeast(ns, 'tea', '2 minutes')).toBe(false);
  });

  it("a reflection's snapshot read never refreshes, neither searched memories nor profiles", async () => {
    const ns = ['ttl', 'snapshot'];
    await put(ns, 'k', 'User is in Paris this week');
    await put(ns, 'profile:user', 'User lives in Paris');
    await expireIn(ns, '1 minute');
    const before = [await row(ns, 'k'), await row(ns, 'profile:user')];

    const [snapshot] = await f.memories.reflectionSnapshot(
      [{ namespace: ns, kinds: ['memory'], profiles: [{ key: 'profile:user', kind: 'user' }] }],
      [vec('Paris')],
      10,
    );
    expect(snapshot!.memories.map((m) => m.key)).toContain('k');
    expect(snapshot!.profiles.map((m) => m.key)).toEqual(['profile:user']);
    expect([await row(ns, 'k'), await row(ns, 'profile:user')]).toEqual(before);
  });

  it('memories a reflection writes with a kind TTL keep their duration, and store reads refresh them', async () => {
    const ns = ['ttl', 'reflected'];
    const change = (threadId: string, version: number, writes: Write[]): ChangeSet => ({
      threadId,
      once: { cursor: { threadId, expected: null, next: '1-0' } },
      actor: 'test',
      reads: [{ namespace: ns, version }],
      writes,
    });
    const value = { content: 'User is in Paris this week' };
    const fields = [{ field: '$', text: value.content, vector: vec(value.content) }];
    const insert = { op: 'put' as const, namespace: ns, key: 'k', kind: 'memory', value, fields, ttl: HOUR };
    expect((await f.memories.apply(change('th-1', 0, [insert]))).status).toBe('applied');
    expect(await row(ns, 'k')).toMatchObject({ ttlMs: HOUR });
    // The expiry is the database's now() of the commit + the TTL (one clock with reads).
    const inserted = await row(ns, 'k');
    expect(inserted.expiresAt!.getTime() - inserted.updatedAt.getTime()).toBe(HOUR);

    // An update by a kind without a TTL keeps the expiry and the duration the item had.
    const update: Write = {
      ...insert,
      value: { content: 'User is in Paris until Friday' },
      ifVersion: 1,
      ttl: 'keep',
    };
    expect((await f.memories.apply(change('th-2', 1, [update]))).status).toBe('applied');
    expect(await row(ns, 'k')).toMatchObject({ ttlMs: HOUR, version: 2 });

    await expireIn(ns, '1 minute');
    await f.store.get({ namespace: ns, key: 'k' });
    expect(await livesAtLeast(ns, 'k', '59 minutes')).toBe(true);
  });

  it.skipIf(backend.name === 'pglite')(
    'a refresh never waits for a writer: an item whose row is locked is returned unrefreshed',
    async () => {
      // Postgres only: it needs a second connection while the first holds the lock (PGlite has one).
      const ns = ['ttl', 'locked'];
      await put(ns, 'k', 'User likes green tea');
      await expireIn(ns, '1 minute');
      const before = await row(ns, 'k');
      const got = await f.db.transaction(async (tx) => {
        await tx.query(
          `select 1 from ${tables(f.memories.schema).memories} where namespace = $1 and key = 'k' for update`,
          [ns],
        );
        return f.store.get({ namespace: ns, key: 'k' });
      });
      expect(got).toMatchObject({ key: 'k', expiresAt: before.expiresAt });
      expect(await row(ns, 'k')).toEqual(before);
    },
  );
});

describe.each(backends)('TTL refresh and migration 003 on $name', (backend) => {
  it('items put before migration 003 have no recorded duration and are not refreshed until a put records one', async () => {
    const { db, schema, close } = await backend.open();
    try {
      await migrate(db, { schema, dimensions: TEST_DIMENSIONS, log: silent, migrations: migrations.slice(0, 2) });
      const ns = ['ttl', 'old'];
      const memories = new MemoryDb(db, schema, silent);
      const t = tables(schema);
      await db.query(`insert into ${t.namespaces} (namespace, items) values ($1, 1)`, [ns]);
      // As the code before 003 wrote a put with a TTL: an expiry, no duration.
      await db.query(
        `insert into ${t.memories} (namespace, key, kind, value, expires_at) values ($1, 'k', 'memory', '{"content": "old"}', now() + interval '1 minute')`,
        [ns],
      );
      expect(
        (await migrate(db, { schema, dimensions: TEST_DIMENSIONS, log: silent, migrations: migrations.slice(0, 3) }))
          .applied,
      ).toEqual([3]);
      // Today's code runs on today's schema: the later migrations go over 003's result too.
      await migrate(db, { schema, dimensions: TEST_DIMENSIONS, log: silent });

      const store = new StoreService(memories, {
        embedder: null,
        indexFields: ['$'],
        defaultTtlMs: null,
        refreshTtlOnRead: true,
        defaultKind: 'memory',
        actor: 'test',
        log: silent,
      });
      const expiry = async () =>
        (
          await db.query<{ expires_at: Date; ttl_ms: unknown }>(
            `select expires_at, ttl_ms from ${t.memories} where key = 'k'`,
          )
        ).rows[0]!;
      const before = await expiry();
      expect(before.ttl_ms).toBeNull();
      expect(await store.get({ namespace: ns, key: 'k' })).toMatchObject({ expiresAt: before.expires_at });
      expect(await store.search({ namespacePrefix: ns })).toHaveLength(1);
      expect(await expiry()).toEqual(before);

      await store.put({ namespace: ns, key: 'k', value: { content: 'new' }, ttl: HOUR });
      await db.query(`update ${t.memories} set expires_at = now() + interval '1 minute' where key = 'k'`);
      await store.get({ namespace: ns, key: 'k' });
      expect(
        (
          await db.query<{ ok: boolean }>(
            `select expires_at >= now() + interval '59 minutes' as ok from ${t.memories} where key = 'k'`,
          )
        ).rows[0]!.ok,
      ).toBe(true);
    } finally {
      await close();
    }
  });
});
