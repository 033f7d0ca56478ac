import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tables } from '../src/store/sql.js';
import { StoreService } from '../src/store/store-service.js';
import { MemoryDb } from '../src/store/memory-db.js';
import { backends, observedDb, openStore, randomUnitVector, silent, type StoreFixture } from './helpers/backends.js';

/** A unit vector near `base` (cosine about 0.9): what an embedding gives texts "about the same thing". */
function near(base: number[], seed: number): number[] {
  const noise = randomUnitVector(seed);
  const v = base.map((x, i) => x + 0.45 * (noise[i] as number));
  const norm = Math.hypot(...v);
  return v.map((x) => x / norm);
}

/**
 * Hybrid retrieval. Embedding models place an order number, a rare name or a date poorly (their
 * vectors say "an order", not "this order"), so the stand-in's vectors are fixed here to do the
 * same: twenty memories about orders sit near the query, and the one that holds the exact order
 * number sits far from it. Vector search ranks it outside the top 10; its words find it.
 */
describe.each(backends)('hybrid search on $name', (backend) => {
  let f: StoreFixture;
  const ns = ['hybrid', 'u1'];
  const query = 'Where was order A-77123 delivered?';
  const target = 'Order A-77123 (blue kettle) was delivered to the Lisbon office on 2024-03-05';
  const others = Array.from(
    { length: 20 },
    (_, i) => `User asked where an order of ${['shoes', 'books', 'tea', 'lamps'][i % 4]} was delivered (${i})`,
  );

  beforeAll(async () => {
    f = await openStore(backend);
    const q = randomUnitVector(1);
    f.embedder.fixed.set(query, q);
    others.forEach((text, i) => f.embedder.fixed.set(text, near(q, 100 + i)));
    f.embedder.fixed.set(target, randomUnitVector(999));
    f.embedder.fixed.set('Dr. Okonkwo is the family doctor', randomUnitVector(998));
    await f.store.batch([
      ...others.map((content, i) => ({ op: 'put' as const, namespace: ns, key: `o${i}`, value: { content } })),
      { op: 'put' as const, namespace: ns, key: 'target', value: { content: target } },
      { op: 'put' as const, namespace: ns, key: 'doctor', value: { content: 'Dr. Okonkwo is the family doctor' } },
      // Another user's namespace holds the same order number: scopes must keep it out.
      { op: 'put' as const, namespace: ['hybrid', 'u2'], key: 'target', value: { content: target } },
    ]);
  });
  afterAll(async () => f?.close());

  const keys = async (mode: 'vector' | 'text' | 'hybrid', q = query, limit = 10) =>
    (await f.store.search({ namespacePrefix: ns, query: q, mode, limit })).map((h) => h.key);

  it('finds the memory holding an exact order number that vector search ranks outside the top 10', async () => {
    expect(await keys('vector')).not.toContain('target');
    expect((await keys('text'))[0]).toBe('target');
    // In the hybrid top 10 (k), though second-rate in the vector ranking: RRF lets one ranking's
    // first place through without letting it override what both rankings agree on.
    expect(await keys('hybrid')).toContain('target');
  });

  it('weighs rare words over common ones: a name or a date alone finds its memory', async () => {
    expect((await keys('text', 'what did Okonkwo say'))[0]).toBe('doctor');
    expect((await keys('hybrid', 'anything on 2024-03-05?', 5))[0]).toBe('target');
  });

  it('text mode needs no embedding call, and a query with no searchable word finds nothing', async () => {
    f.embedder.calls = [];
    await keys('text');
    expect(f.embedder.calls).toEqual([]);
    expect(await keys('text', 'the of and')).toEqual([]);
  });

  it('keeps to its scope, its filter and live items; pages through the fused list', async () => {
    const all = await f.store.search({ namespacePrefix: ['hybrid'], query, mode: 'text', limit: 50 });
    expect(all.filter((h) => h.key === 'target').map((h) => h.namespace)).toEqual(
      expect.arrayContaining([ns, ['hybrid', 'u2']]),
    );
    expect(
      await f.store.search({ namespacePrefix: ns, query, mode: 'hybrid', filter: { content: { $ne: target } } }),
    ).not.toContainEqual(expect.objectContaining({ key: 'target' }));

    const page1 = await keys('hybrid', query, 5);
    const page2 = (await f.store.search({ namespacePrefix: ns, query, mode: 'hybrid', limit: 5, offset: 5 })).map(
      (h) => h.key,
    );
    expect(page1.filter((k) => page2.includes(k))).toEqual([]);
    expect([...page1, ...page2]).toEqual(await keys('hybrid', query, 10));

    await f.db.query(
      `update ${tables(f.schema).memories} set expires_at = now() - interval '1 second' where namespace = $1 and key = 'target'`,
      [ns],
    );
    expect(await keys('text')).not.toContain('target');
    expect(await keys('hybrid')).not.toContain('target');
  });

  it('pages 150 memories without showing one twice or skipping one, to its depth, and says where it ends', async () => {
    const deep = ['paged', 'u1']; // outside ['hybrid'], which the index test below counts
    const texts = Array.from({ length: 150 }, (_, i) => `common item${i}${i % 7 === 0 ? ' rare' : ''}`);
    texts.forEach((text, i) => f.embedder.fixed.set(text, randomUnitVector(1_000 + i)));
    f.embedder.fixed.set('common rare', randomUnitVector(5));
    await f.store.batch(texts.map((t, i) => ({ op: 'put' as const, namespace: deep, key: `k${i}`, value: { t } })));
    const page = async (offset: number, limit = 10) =>
      (await f.store.search({ namespacePrefix: deep, query: 'common rare', mode: 'hybrid', limit, offset })).map(
        (h) => h.key,
      );
    const seen: string[] = [];
    for (let offset = 0; offset < 50; offset += 10) seen.push(...(await page(offset)));
    expect(new Set(seen).size).toBe(50);
    expect(seen).toEqual(await page(0, 50));
    await expect(page(50)).rejects.toThrow(/offset \+ limit may be at most 50 .*"vector" or "text"/);
    // A larger limit fuses deeper: one page of 100 is the best 100.
    expect(new Set(await page(0, 100)).size).toBe(100);
  });

  it('a store without an embedder still indexes texts; an update removes the words it no longer holds', async () => {
    const plain = ['hybrid', 'plain'];
    const textOnly = new StoreService(f.memories, {
      embedder: null,
      indexFields: ['$'],
      defaultTtlMs: null,
      refreshTtlOnRead: false,
      defaultKind: 'memory',
      actor: 'test',
      log: silent,
    });
    await textOnly.put({ namespace: plain, key: 'k', value: { content: 'Parcel 55-ZX9 is at the depot' } });
    const found = await textOnly.search({ namespacePrefix: plain, query: '55-ZX9', mode: 'text' });
    expect(found.map((h) => h.key)).toEqual(['k']);
    await expect(textOnly.search({ namespacePrefix: plain, query: '55-ZX9' })).rejects.toThrow(/needs an embedder/);
    await textOnly.put({ namespace: plain, key: 'k', value: { content: 'Parcel collected' } });
    expect(await textOnly.search({ namespacePrefix: plain, query: '55-ZX9', mode: 'text' })).toEqual([]);
  });

  it('a large prefix under the HNSW index ranks its vectors through the index, and still finds the words', async () => {
    const statements: string[] = [];
    const watched = new MemoryDb(
      observedDb(f.db, (text) => statements.push(text)),
      f.schema,
      silent,
      {
        exactSearchMax: 5,
        efSearch: 100,
      },
    );
    const store = new StoreService(watched, {
      embedder: f.embedder,
      indexFields: ['$'],
      defaultTtlMs: null,
      refreshTtlOnRead: false,
      defaultKind: 'memory',
      actor: 'test',
      log: silent,
    });
    const ids = (hits: { namespace: string[]; key: string }[]) => hits.map((h) => `${h.namespace.join('/')}/${h.key}`);

    await watched.createAnnIndex();
    try {
      statements.length = 0;
      // Two users' namespaces, over exactSearchMax: the vectors go through the index.
      const viaIndex = await store.search({ namespacePrefix: ['hybrid'], query, mode: 'hybrid' });
      expect(statements.some((s) => s.includes('hnsw.ef_search'))).toBe(true);
      const exact = await store.search({ namespacePrefix: ['hybrid'], query, mode: 'hybrid', exact: true });
      expect(ids(viaIndex)).toContain('hybrid/u2/target');
      // 46 vectors: the index finds them all, so the fused top 10 is the exact one.
      expect(new Set(ids(viaIndex))).toEqual(new Set(ids(exact)));
    } finally {
      await watched.dropAnnIndex();
    }
  });
});
