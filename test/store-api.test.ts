import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConflictError, InputError } from '../src/errors.js';
import type { MemoryItem } from '../src/store/types.js';
import { backends, openStore, pgBackend, type StoreFixture } from './helpers/backends.js';
import { TEST_DATABASE_URL, waitFor } from './helpers/harness.js';
import { tables } from '../src/store/sql.js';

const conflictOf = (p: Promise<unknown>) =>
  p.then(
    () => null,
    (err: unknown) => err,
  );

describe.each(backends)('store API writes on $name', (backend) => {
  let f: StoreFixture;
  beforeAll(async () => {
    f = await openStore(backend);
  });
  afterAll(async () => f?.close());

  const vectorFields = async (namespace: string[], key: string) =>
    (
      await f.db.query<{ field: string }>(
        `select field from ${tables(f.memories.schema).vectors} where namespace = $1 and key = $2 order by field`,
        [namespace, key],
      )
    ).rows.map((r) => r.field);

  it('puts, gets and deletes an item with its metadata, and history records each change with its actor', async () => {
    const ns = ['api', 'u1'];
    const put = await f.store.put({
      namespace: ns,
      key: 'diet',
      value: { content: 'User is vegetarian' },
      actor: 'job:42',
    });
    expect(put).toMatchObject({
      namespace: ns,
      key: 'diet',
      kind: 'memory',
      version: 1,
      expiresAt: null,
      value: { content: 'User is vegetarian' },
    });
    expect(put.createdAt).toBeInstanceOf(Date);

    const updated = await f.store.put({
      namespace: ns,
      key: 'diet',
      value: { content: 'User is vegan' },
      kind: 'profile',
    });
    expect(updated).toMatchObject({ version: 2, kind: 'profile' });
    expect(updated.createdAt.getTime()).toBe(put.createdAt.getTime());
    expect(await f.store.get({ namespace: ns, key: 'diet' })).toMatchObject({
      version: 2,
      value: { content: 'User is vegan' },
    });

    expect(await f.store.delete({ namespace: ns, key: 'diet', actor: 'admin' })).toBe(true);
    expect(await f.store.get({ namespace: ns, key: 'diet' })).toBeNull();
    expect(await f.store.delete({ namespace: ns, key: 'diet' })).toBe(false);

    const history = await f.store.history({ namespace: ns, key: 'diet' });
    expect(history.map((h) => [h.op, h.version, h.actor, h.before, h.after])).toEqual([
      ['insert', 1, 'job:42', null, { content: 'User is vegetarian' }],
      ['update', 2, 'test', { content: 'User is vegetarian' }, { content: 'User is vegan' }],
      ['delete', 2, 'admin', { content: 'User is vegan' }, null],
    ]);
    expect(history.every((h) => h.at instanceof Date)).toBe(true);
  });

  it('a put without a kind keeps the live item its kind (history records it); a new item gets the default kind', async () => {
    const ns = ['api', 'keep-kind'];
    await f.store.put({ namespace: ns, key: 'profile:user_profile', value: { name: 'Ana' }, kind: 'user_profile' });
    // An application reads the item, edits it and puts it back, naming no kind.
    const edited = await f.store.batch([
      { op: 'put', namespace: ns, key: 'profile:user_profile', value: { name: 'Ana', city: 'Porto' } },
    ]);
    expect(edited[0]).toMatchObject({ kind: 'user_profile', version: 2 });
    expect(await f.store.get({ namespace: ns, key: 'profile:user_profile' })).toMatchObject({
      kind: 'user_profile',
      value: { name: 'Ana', city: 'Porto' },
    });
    expect((await f.store.history({ namespace: ns, key: 'profile:user_profile' })).map((h) => [h.op, h.kind])).toEqual([
      ['insert', 'user_profile'],
      ['update', 'user_profile'],
    ]);

    await f.store.delete({ namespace: ns, key: 'profile:user_profile' });
    expect(await f.store.put({ namespace: ns, key: 'profile:user_profile', value: { name: 'Bo' } })).toMatchObject({
      kind: 'memory',
      version: 3,
    });
  });

  it('compare-and-set: a stale ifVersion is a 409 that writes nothing; ifVersion 0 creates only', async () => {
    const ns = ['api', 'cas'];
    await f.store.put({ namespace: ns, key: 'k', value: { n: 1 }, ifVersion: 0 });
    const dup = await conflictOf(f.store.put({ namespace: ns, key: 'k', value: { n: 99 }, ifVersion: 0 }));
    expect(dup).toBeInstanceOf(ConflictError);
    expect((dup as ConflictError).details).toEqual({
      conflicts: [{ namespace: ns, key: 'k', expected: 0, actual: 1 }],
    });

    await f.store.put({ namespace: ns, key: 'k', value: { n: 2 }, ifVersion: 1 });
    const stale = await conflictOf(f.store.put({ namespace: ns, key: 'k', value: { n: 3 }, ifVersion: 1 }));
    expect(stale).toBeInstanceOf(ConflictError);
    expect((stale as Error).message).toMatch(/is at version 2, not 1/);
    expect(await conflictOf(f.store.delete({ namespace: ns, key: 'k', ifVersion: 1 }))).toBeInstanceOf(ConflictError);
    expect(await f.store.get({ namespace: ns, key: 'k' })).toMatchObject({ version: 2, value: { n: 2 } });
    expect((await f.store.history({ namespace: ns, key: 'k' })).map((h) => h.version)).toEqual([1, 2]);
  });

  it('returns history a page at a time, 100 rows unless asked, oldest first', async () => {
    const ns = ['api', 'paged'];
    for (let v = 1; v <= 102; v++) await f.store.put({ namespace: ns, key: 'profile', value: { n: v } });
    const versions = async (page: { limit?: number; offset?: number }) =>
      (await f.store.history({ namespace: ns, key: 'profile', ...page })).map((h) => h.version);
    const first = await versions({});
    expect([first.length, first[0], first.at(-1)]).toEqual([100, 1, 100]);
    expect(await versions({ offset: 100 })).toEqual([101, 102]);
    expect(await versions({ limit: 2, offset: 50 })).toEqual([51, 52]);
    await expect(f.store.history({ namespace: ns, key: 'profile', limit: 1_001 })).rejects.toThrow(
      /invalid history request: ✖ must be a whole number from 1 to 1000\n {2}→ at limit/,
    );
  });

  it('versions never repeat for a key: a version held from before a delete cannot overwrite the re-created item', async () => {
    const ns = ['api', 'aba'];
    await f.store.put({ namespace: ns, key: 'k', value: { v: 'first' } });
    await f.store.delete({ namespace: ns, key: 'k' });
    const again = await f.store.put({ namespace: ns, key: 'k', value: { v: 'second' } });
    expect(again.version).toBe(2);
    expect(
      await conflictOf(f.store.put({ namespace: ns, key: 'k', value: { v: 'stale' }, ifVersion: 1 })),
    ).toBeInstanceOf(ConflictError);
  });

  it('concurrent read-modify-write loops with ifVersion lose no update', async () => {
    const ns = ['api', 'race'];
    await f.store.put({ namespace: ns, key: 'counter', value: { n: 0 } });
    let conflicts = 0;
    const worker = async () => {
      for (let done = 0; done < 5;) {
        const cur = (await f.store.get({ namespace: ns, key: 'counter' })) as MemoryItem;
        try {
          await f.store.put({
            namespace: ns,
            key: 'counter',
            value: { n: (cur.value.n as number) + 1 },
            ifVersion: cur.version,
          });
          done++;
        } catch (err) {
          if (!(err instanceof ConflictError)) throw err;
          conflicts++;
        }
      }
    };
    await Promise.all(Array.from({ length: 6 }, worker));
    const final = (await f.store.get({ namespace: ns, key: 'counter' })) as MemoryItem;
    expect(final.value.n).toBe(30);
    expect(final.version).toBe(31);
    const history = await f.store.history({ namespace: ns, key: 'counter' });
    // Each update's `before` is exactly the previous `after`: no write was based on a lost one.
    for (let i = 1; i < history.length; i++) expect(history[i]!.before).toEqual(history[i - 1]!.after);
    if (backend.name === 'postgres') expect(conflicts).toBeGreaterThan(0);
  });

  it('concurrent blind puts to one item all land, each in its own version with a consistent history', async () => {
    const ns = ['api', 'blind'];
    await Promise.all(
      Array.from({ length: 12 }, (_, i) => f.store.put({ namespace: ns, key: 'k', value: { writer: i } })),
    );
    const history = await f.store.history({ namespace: ns, key: 'k' });
    expect(history.map((h) => h.version)).toEqual(Array.from({ length: 12 }, (_, i) => i + 1));
    expect(new Set(history.map((h) => (h.after as { writer: number }).writer)).size).toBe(12);
    for (let i = 1; i < history.length; i++) expect(history[i]!.before).toEqual(history[i - 1]!.after);
  });

  it('embeds the configured JSON paths, several vectors per item, and deletes vectors of fields that are gone', async () => {
    const ns = ['api', 'fields'];
    const value = {
      title: 'Trip',
      meta: { summary: 'Kyoto in spring' },
      sections: [{ text: 'temples' }, { text: 'ramen' }],
    };
    await f.store.put({ namespace: ns, key: 'doc', value, index: ['title', 'meta.summary', 'sections[*].text'] });
    expect(await vectorFields(ns, 'doc')).toEqual(['meta.summary', 'sections[0].text', 'sections[1].text', 'title']);

    await f.store.put({
      namespace: ns,
      key: 'doc',
      value: { title: 'Trip', sections: [{ text: 'temples' }] },
      index: ['title', 'meta.summary', 'sections[*].text'],
    });
    expect(await vectorFields(ns, 'doc')).toEqual(['sections[0].text', 'title']);

    await f.store.put({ namespace: ns, key: 'doc', value: { title: 'Trip' }, index: false });
    expect(await vectorFields(ns, 'doc')).toEqual([]);
    await f.store.put({ namespace: ns, key: 'doc', value: { content: 'default field' } });
    expect(await vectorFields(ns, 'doc')).toEqual(['$']);
  });

  it('a batch embeds once, writes all or nothing, rejects a key written twice, and its reads see its writes', async () => {
    const ns = ['api', 'batch'];
    f.embedder.calls = [];
    const results = await f.store.batch([
      { op: 'put', namespace: ns, key: 'a', value: { content: 'User likes ramen' } },
      { op: 'put', namespace: [...ns, 'sub'], key: 'b', value: { content: 'User likes tea' } },
      { op: 'get', namespace: ns, key: 'a' },
      { op: 'search', namespacePrefix: ns, query: 'ramen', limit: 1 },
      { op: 'listNamespaces', prefix: ns },
      { op: 'delete', namespace: ns, key: 'missing' },
    ]);
    expect(f.embedder.calls).toEqual([['User likes ramen', 'User likes tea', 'ramen']]);
    expect(results[0]).toMatchObject({ key: 'a', version: 1 });
    expect(results[2]).toMatchObject({ key: 'a', value: { content: 'User likes ramen' } });
    expect((results[3] as MemoryItem[]).map((i) => i.key)).toEqual(['a']);
    expect(results[4]).toEqual([ns, [...ns, 'sub']]);
    expect(results[5]).toBe(false);

    const failed = await conflictOf(
      f.store.batch([
        { op: 'put', namespace: ns, key: 'c', value: { content: 'new' } },
        { op: 'put', namespace: ns, key: 'a', value: { content: 'stale' }, ifVersion: 7 },
      ]),
    );
    expect(failed).toBeInstanceOf(ConflictError);
    expect(await f.store.get({ namespace: ns, key: 'c' })).toBeNull();

    const twice = await conflictOf(
      f.store.batch([
        { op: 'delete', namespace: ns, key: 'a' },
        { op: 'put', namespace: ns, key: 'a', value: {} },
      ]),
    );
    // A 400 exactly: InputError itself, not a subclass with another status.
    expect((twice as Error).constructor).toBe(InputError);
  });

  it('every write bumps the namespace version that reflections compare, and keeps item counts', async () => {
    const ns = ['api', 'bump'];
    const [before] = await f.memories.namespaceVersions([ns]);
    await f.store.put({ namespace: ns, key: 'a', value: { x: 1 } });
    await f.store.put({ namespace: ns, key: 'b', value: { x: 2 } });
    await f.store.delete({ namespace: ns, key: 'a' });
    const [after] = await f.memories.namespaceVersions([ns]);
    expect(after).toBe((before ?? 0) + 3);
    const items = await f.db.query<{ items: unknown }>(
      `select items from ${tables(f.memories.schema).namespaces} where namespace = $1`,
      [ns],
    );
    expect(Number(items.rows[0]!.items)).toBe(1);
  });

  it('rejects bad input with a 400 naming each problem, and writes nothing', async () => {
    const bad = [
      { namespace: [], key: 'k', value: {} },
      { namespace: ['a', ''], key: 'k', value: {} },
      { namespace: ['a'], key: '', value: {} },
      { namespace: ['a'], key: 'k', value: [1, 2] },
      { namespace: ['a'], key: 'k', value: { s: 'nul \u0000 inside' } },
      { namespace: ['a\u0000'], key: 'k', value: {} },
      { namespace: ['a'], key: 'k', value: {}, ttl: -5 },
      { namespace: ['a'], key: 'k', value: {}, index: ['a..b'] },
      { namespace: ['a'], key: 'k', value: {}, kind: 'Not A Kind' },
      { namespace: ['a'], key: 'k', value: {}, ifVersion: 1.5 },
      { namespace: ['a'], key: 'k', value: {}, unknown: true },
    ];
    for (const input of bad) {
      const err = await conflictOf(f.store.put(input));
      expect((err as Error).constructor, JSON.stringify(input)).toBe(InputError);
    }
    expect(await f.store.listNamespaces({ prefix: ['a'] })).toEqual([]);
    // Text that spells the escape is no NUL: stored as sent.
    const spelled = { s: 'a backslash, then u0000: \\u0000' };
    expect((await f.store.put({ namespace: ['spelled'], key: 'k', value: spelled })).value).toEqual(spelled);
    const search = await conflictOf(f.store.search({ namespacePrefix: ['a'], filter: { n: { $gt: true } } }));
    expect((search as Error).message).toMatch(/compares with a number or a string/);
    expect(
      ((await conflictOf(f.store.search({ namespacePrefix: ['a'], filter: { n: { $regex: 'x' } } }))) as Error).message,
    ).toMatch(/unknown operator/);
  });
});

/** Lock order between a store batch and a reflection's commit; PGlite has one session, so Postgres only. */
describe('store writes beside a reflection on postgres', () => {
  let f: StoreFixture;
  let reflection: pg.Client;
  beforeAll(async () => {
    f = await openStore(pgBackend);
    reflection = new pg.Client({ connectionString: TEST_DATABASE_URL });
    await reflection.connect();
  });
  afterAll(async () => {
    await reflection?.end();
    await f?.close();
  });

  it('a batch over an existing and a new namespace does not deadlock with a reflection that creates the new one', async () => {
    const [a, b] = [
      ['lock', 'a'],
      ['lock', 'b'],
    ];
    await f.store.put({ namespace: a, key: 'seed', value: { content: 'exists' } });
    const ns = tables(f.memories.schema).namespaces;
    // What a reflection's commit does (apply.ts): create and lock each namespace, in sorted order.
    const lock = async (namespace: string[]) => {
      await reflection.query(`insert into ${ns} (namespace) values ($1) on conflict do nothing`, [namespace]);
      await reflection.query(`select version from ${ns} where namespace = $1 for update`, [namespace]);
    };
    await reflection.query('begin');
    await lock(a);
    const pid = (await reflection.query<{ pid: number }>('select pg_backend_pid() as pid')).rows[0]!.pid;

    const batch = f.store.batch([
      { op: 'put', namespace: a, key: 'k', value: { content: 'in a' } },
      { op: 'put', namespace: b, key: 'k', value: { content: 'in b' } },
    ]);
    const failed = conflictOf(batch);
    // The batch waits for the reflection's lock on a: only then does the reflection go on to b.
    await waitFor(
      async () =>
        (await f.db.query(`select 1 from pg_stat_activity where $1 = any(pg_blocking_pids(pid))`, [pid])).rowCount,
    );
    await lock(b);
    await reflection.query('commit');

    expect(await failed).toBeNull();
    expect((await batch).map((r) => (r as MemoryItem).version)).toEqual([1, 1]);
    expect(await f.store.get({ namespace: b, key: 'k' })).toMatchObject({ value: { content: 'in b' } });
  });
});

describe.each(backends)('store TTL on $name', (backend) => {
  let f: StoreFixture;
  beforeAll(async () => {
    f = await openStore(backend, { defaultTtlMs: 3_600_000 });
  });
  afterAll(async () => f?.close());

  const expire = (ns: string[], key: string) =>
    f.db.query(
      `update ${tables(f.memories.schema).memories} set expires_at = now() - interval '1 second' where namespace = $1 and key = $2`,
      [ns, key],
    );

  it('applies the default TTL, a per-item TTL, or none', async () => {
    const ns = ['ttl', 'defaults'];
    const start = Date.now();
    const byDefault = await f.store.put({ namespace: ns, key: 'd', value: { x: 1 } });
    const own = await f.store.put({ namespace: ns, key: 'o', value: { x: 1 }, ttl: 60_000 });
    const never = await f.store.put({ namespace: ns, key: 'n', value: { x: 1 }, ttl: null });
    expect(byDefault.expiresAt!.getTime()).toBeGreaterThanOrEqual(start + 3_600_000);
    expect(own.expiresAt!.getTime()).toBeLessThan(start + 3_600_000);
    expect(never.expiresAt).toBeNull();
    // One clock: the expiry is the database's now() of the write (its updated_at) + the TTL,
    // in the answer and in the row alike.
    expect(byDefault.expiresAt!.getTime() - byDefault.updatedAt.getTime()).toBe(3_600_000);
    expect(own.expiresAt!.getTime() - own.updatedAt.getTime()).toBe(60_000);
    const stored = await f.db.query<{ lived: string }>(
      `select (extract(epoch from expires_at - updated_at) * 1000)::bigint::text as lived from ${tables(f.memories.schema).memories} where namespace = $1 and key = 'o'`,
      [ns],
    );
    expect(stored.rows[0]!.lived).toBe('60000');
  });

  it('never returns an expired item (get, search, listNamespaces), and the sweeper removes it with history', async () => {
    const ns = ['ttl', 'gone'];
    await f.store.put({ namespace: ns, key: 'k', value: { content: 'User is in Paris this week' } });
    await expire(ns, 'k');
    expect(await f.store.get({ namespace: ns, key: 'k' })).toBeNull();
    expect(await f.store.search({ namespacePrefix: ns, query: 'Paris' })).toEqual([]);
    expect(await f.store.search({ namespacePrefix: ns })).toEqual([]);
    expect(await f.store.listNamespaces({ prefix: ns })).toEqual([]);
    expect(await f.memories.sweepExpired('sweeper')).toBeGreaterThanOrEqual(1);
    expect((await f.store.history({ namespace: ns, key: 'k' })).map((h) => [h.op, h.actor])).toEqual([
      ['insert', 'test'],
      ['expire', 'sweeper'],
    ]);
    const count = await f.db.query<{ items: unknown }>(
      `select items from ${tables(f.memories.schema).namespaces} where namespace = $1`,
      [ns],
    );
    expect(Number(count.rows[0]!.items)).toBe(0);
  });

  it('a put over an expired, unswept item starts a new item: expire then insert in history, ifVersion sees 0', async () => {
    const ns = ['ttl', 'reuse'];
    await f.store.put({ namespace: ns, key: 'k', value: { v: 1 } });
    await expire(ns, 'k');
    const fresh = await f.store.put({ namespace: ns, key: 'k', value: { v: 2 }, ifVersion: 0 });
    expect(fresh.version).toBe(2);
    // The expired documents are gone from history too; the new item's is kept.
    expect(
      (await f.store.history({ namespace: ns, key: 'k' })).map((h) => [h.op, h.version, h.before, h.after]),
    ).toEqual([
      ['insert', 1, null, null],
      ['expire', 1, null, null],
      ['insert', 2, null, { v: 2 }],
    ]);
  });
});
