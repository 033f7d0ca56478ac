import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SearchItem } from '../src/store/types.js';
import { backends, cosine, openStore, randomUnitVector, type StoreFixture } from './helpers/backends.js';

/** Items per namespace and namespaces around the one searched: the table is much larger than it. */
const PER = 40;
const NAMESPACES = 12;
const docText = (u: number, i: number, f = 'a') => `doc ${u} ${i} ${f}`;

describe.each(backends)('store search on $name', (backend) => {
  let f: StoreFixture;
  /** Every vector of namespace u = 3, for the brute-force truth. */
  const truth = new Map<string, number[][]>();

  beforeAll(async () => {
    f = await openStore(backend);
    for (let u = 0; u < NAMESPACES; u++) {
      const ops = [];
      for (let i = 0; i < PER; i++) {
        // Half the items have two embedded fields: they rank by the better one.
        const fields = i % 2 ? ['a', 'b'] : ['a'];
        const value: Record<string, unknown> = { a: docText(u, i, 'a'), n: i, tag: i % 3 === 0 ? 'fizz' : 'plain' };
        if (fields.includes('b')) value.b = docText(u, i, 'b');
        for (const field of fields)
          f.embedder.fixed.set(docText(u, i, field), randomUnitVector(u * 10_000 + i * 10 + field.charCodeAt(0)));
        ops.push({ op: 'put' as const, namespace: ['search', `u${u}`], key: `k${i}`, value, index: fields });
        if (u === 3)
          truth.set(
            `k${i}`,
            fields.map((fl) => f.embedder.fixed.get(docText(u, i, fl)) as number[]),
          );
      }
      await f.store.batch(ops);
    }
  });
  afterAll(async () => f?.close());

  /** Keys of namespace u3 by their best field's cosine to `q`, best first. */
  const bruteForce = (q: number[], where: (key: string) => boolean = () => true) =>
    [...truth]
      .filter(([key]) => where(key))
      .map(([key, vs]) => ({ key, score: Math.max(...vs.map((v) => cosine(q, v))) }))
      .sort((a, b) => b.score - a.score)
      .map((x) => x.key);

  it('a per-namespace search returns exactly the true top-k (recall@10 = 1.0) for many queries', async () => {
    for (let qi = 0; qi < 20; qi++) {
      const query = `query ${qi}`;
      f.embedder.fixed.set(query, randomUnitVector(900_000 + qi));
      const hits = await f.store.search({ namespacePrefix: ['search', 'u3'], query, limit: 10 });
      expect(hits.map((h) => h.key)).toEqual(bruteForce(f.embedder.fixed.get(query)!).slice(0, 10));
      expect(hits.every((h) => h.namespace[1] === 'u3')).toBe(true);
      // Scores are the best field's cosine similarity, descending.
      const best = (key: string) => Math.max(...truth.get(key)!.map((v) => cosine(f.embedder.fixed.get(query)!, v)));
      for (const h of hits) expect(h.score).toBeCloseTo(best(h.key), 4);
    }
  });

  it('offset pages through every result in order, past twice the limit', async () => {
    const query = 'paging query';
    f.embedder.fixed.set(query, randomUnitVector(424242));
    const pages: SearchItem[] = [];
    for (let offset = 0; offset < PER + 7; offset += 7)
      pages.push(...(await f.store.search({ namespacePrefix: ['search', 'u3'], query, limit: 7, offset })));
    expect(pages.map((h) => h.key)).toEqual(bruteForce(f.embedder.fixed.get(query)!));
  });

  it('filters before ranking: the top-k among matching items, exactly', async () => {
    const query = 'filtered query';
    f.embedder.fixed.set(query, randomUnitVector(777));
    const hits = await f.store.search({
      namespacePrefix: ['search', 'u3'],
      query,
      filter: { tag: 'fizz', n: { $gte: 9 } },
      limit: 5,
    });
    const fizz = (key: string) => {
      const i = Number(key.slice(1));
      return i % 3 === 0 && i >= 9;
    };
    expect(hits.map((h) => h.key)).toEqual(bruteForce(f.embedder.fixed.get(query)!, fizz).slice(0, 5));
  });

  it('a search without a query lists filtered items, newest first', async () => {
    const hits = await f.store.search({ namespacePrefix: ['search', 'u3'], filter: { n: { $lt: 3 } }, limit: 10 });
    expect(hits.map((h) => h.key).sort()).toEqual(['k0', 'k1', 'k2']);
    expect(hits.every((h) => h.score === null)).toBe(true);
  });

  it('a prefix search spans namespaces under it and ranks exactly across them', async () => {
    const query = 'cross query';
    f.embedder.fixed.set(query, randomUnitVector(31337));
    const q = f.embedder.fixed.get(query)!;
    const hits = await f.store.search({ namespacePrefix: ['search'], query, limit: 10 });
    const all: { id: string; score: number }[] = [];
    for (let u = 0; u < NAMESPACES; u++) {
      for (let i = 0; i < PER; i++) {
        const fields = i % 2 ? ['a', 'b'] : ['a'];
        all.push({
          id: `u${u}/k${i}`,
          score: Math.max(...fields.map((fl) => cosine(q, f.embedder.fixed.get(docText(u, i, fl))!))),
        });
      }
    }
    expect(hits.map((h) => `${h.namespace[1]}/${h.key}`)).toEqual(
      all
        .sort((a, b) => b.score - a.score)
        .slice(0, 10)
        .map((x) => x.id),
    );
    expect(
      await f.memories.searchPlan({ scope: { prefix: ['search'] }, vector: q, filter: [], limit: 10, offset: 0 }),
    ).toBe('exact');
  });

  it('with the HNSW index and a large prefix, searches go through the index; one namespace stays exact', async () => {
    await f.memories.createAnnIndex();
    const small = { ...f.memories.searchSettings };
    Object.assign(f.memories.searchSettings, { exactSearchMax: 100 });
    try {
      const query = 'ann query';
      f.embedder.fixed.set(query, randomUnitVector(5150));
      const q = f.embedder.fixed.get(query)!;
      expect(
        await f.memories.searchPlan({ scope: { prefix: ['search'] }, vector: q, filter: [], limit: 10, offset: 0 }),
      ).toBe('ann');
      expect(
        await f.memories.searchPlan({
          scope: { prefix: ['search', 'u3'] },
          vector: q,
          filter: [],
          limit: 10,
          offset: 0,
        }),
      ).toBe('exact');

      const ann = await f.store.search({ namespacePrefix: ['search'], query, limit: 10 });
      const exact = await f.store.search({ namespacePrefix: ['search'], query, limit: 10, exact: true });
      expect(ann).toHaveLength(10);
      expect(new Set(ann.map((h) => `${h.namespace.join('/')}/${h.key}`)).size).toBe(10);
      // Approximate, so compare overlap, not order; on 480 items HNSW finds nearly all.
      const overlap = ann.filter((h) => exact.some((e) => e.key === h.key && e.namespace[1] === h.namespace[1])).length;
      expect(overlap).toBeGreaterThanOrEqual(8);
      for (let i = 1; i < ann.length; i++) expect(ann[i - 1]!.score!).toBeGreaterThanOrEqual(ann[i]!.score!);

      // Filters and expiry still apply on the ANN path.
      const filtered = await f.store.search({ namespacePrefix: ['search'], query, filter: { tag: 'fizz' }, limit: 10 });
      expect(filtered).toHaveLength(10);
      expect(filtered.every((h) => h.value.tag === 'fizz')).toBe(true);
      const page2 = await f.store.search({ namespacePrefix: ['search'], query, limit: 10, offset: 10 });
      expect(page2).toHaveLength(10);
      expect(page2.some((h) => ann.some((a) => a.key === h.key && a.namespace[1] === h.namespace[1]))).toBe(false);
    } finally {
      Object.assign(f.memories.searchSettings, small);
      await f.memories.dropAnnIndex();
    }
  });
});
