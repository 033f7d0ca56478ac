import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemoryDb } from '../src/store/memory-db.js';
import { snapshotSql } from '../src/store/snapshot.js';
import { tables } from '../src/store/sql.js';
import { observedDb, openStore, pgBackend, randomUnitVector, silent, type StoreFixture } from './helpers/backends.js';

/**
 * A reflection's snapshot of a namespace past the exact-search size goes through the HNSW index
 * (when one exists), and shows the model what an exact read would: the second read of a large
 * namespace (its size learned from the first) takes the index path, whose plan scans the index.
 */
describe('snapshot of a large namespace', () => {
  let f: StoreFixture;
  let memories: MemoryDb;
  const statements: string[] = [];
  const ns = ['memories', 'big'];
  beforeAll(async () => {
    f = await openStore(pgBackend, { search: { exactSearchMax: 100 } });
    memories = new MemoryDb(
      observedDb(f.db, (text) => statements.push(text)),
      f.schema,
      silent,
      { exactSearchMax: 100, efSearch: 100 },
    );
    const ops = Array.from({ length: 400 }, (_, i) => {
      f.embedder.fixed.set(`fact ${i}`, randomUnitVector(i + 1));
      return { op: 'put' as const, namespace: ns, key: `k${i}`, value: { content: `fact ${i}` } };
    });
    await f.store.batch(ops);
    await f.store.batch([{ op: 'put', namespace: ['memories', 'small'], key: 'k', value: { content: 'fact 1' } }]);
    await memories.createAnnIndex();
  });
  afterAll(async () => f?.close());

  const snapshot = (namespace: string[]) => {
    statements.length = 0;
    return memories.reflectionSnapshot(
      [{ namespace, kinds: ['memory'], profiles: [] }],
      [randomUnitVector(7), randomUnitVector(8)],
      20,
    );
  };
  const tookIndexPath = () => statements.some((s) => s.includes("set_config('hnsw.iterative_scan'"));

  it('reads a large namespace through the index, showing the memories an exact read shows', async () => {
    const exact = await snapshot(ns); // its size is learned here
    expect(exact[0]!.items).toBe(400);
    expect(tookIndexPath()).toBe(false);
    const approximate = await snapshot(ns);
    expect(tookIndexPath()).toBe(true);
    const keys = (s: typeof exact) => s[0]!.memories.map((m) => m.key).sort();
    expect(keys(exact)).toHaveLength(20);
    const overlap = keys(approximate).filter((k) => keys(exact).includes(k)).length;
    expect(overlap / keys(exact).length).toBeGreaterThanOrEqual(0.98);
    expect(approximate[0]!.version).toBe(exact[0]!.version);

    // And that path's plan walks the HNSW index (the exact one reads the namespace's btree range).
    const plan = await f.db.transaction(async (tx) => {
      await tx.query(
        `select set_config('enable_seqscan', 'off', true), set_config('hnsw.iterative_scan', 'relaxed_order', true)`,
      );
      const res = await tx.query<{ 'QUERY PLAN': string }>(`explain ${snapshotSql(tables(f.schema))}`, [
        JSON.stringify([{ namespace: ns, kinds: ['memory'], profiles: [], ann: true }]),
        await f.db.vectorArrayParam([randomUnitVector(7)]),
        20,
      ]);
      return res.rows.map((r) => r['QUERY PLAN']).join('\n');
    });
    expect(plan).toMatch(/Index Scan using memory_vectors_embedding_hnsw/);
  });

  it('keeps small namespaces exact, index or not', async () => {
    await snapshot(['memories', 'small']);
    const small = await snapshot(['memories', 'small']);
    expect(tookIndexPath()).toBe(false);
    expect(small[0]!.memories.map((m) => m.key)).toEqual(['k']);
  });
});
