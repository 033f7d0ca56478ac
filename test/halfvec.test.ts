import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkDimensions } from '../src/store/migrate.js';
import { tables } from '../src/store/sql.js';
import { backends, openStore, randomUnitVector, type StoreFixture } from './helpers/backends.js';
import { TEST_DIMENSIONS } from './helpers/harness.js';

/** STORE_VECTOR_STORAGE=half: vectors as pgvector's halfvec, the same calls, half the bytes. */
describe.each(backends)('half-precision vectors on $name', (backend) => {
  let f: StoreFixture;
  beforeAll(async () => {
    f = await openStore(backend, { vectorStorage: 'half' });
    const ops = Array.from({ length: 60 }, (_, i) => {
      f.embedder.fixed.set(`doc ${i}`, randomUnitVector(i + 1));
      return { op: 'put' as const, namespace: ['half', `u${i % 3}`], key: `k${i}`, value: { content: `doc ${i}` } };
    });
    await f.store.batch(ops);
  });
  afterAll(async () => f?.close());

  it('stores halfvec, and searches, snapshots and indexes as with float vectors', async () => {
    const type = await f.db.query<{ type: string }>(
      `select format_type(atttypid, atttypmod) as type from pg_attribute where attrelid = to_regclass($1) and attname = 'embedding'`,
      [tables(f.schema).vectors],
    );
    expect(type.rows[0]?.type).toBe(`halfvec(${TEST_DIMENSIONS})`);
    f.embedder.fixed.set('find doc 7', randomUnitVector(8));
    const hits = await f.store.search({ namespacePrefix: ['half'], query: 'find doc 7', limit: 3 });
    expect(hits[0]?.key).toBe('k7');
    const [snapshot] = await f.memories.reflectionSnapshot(
      [{ namespace: ['half', 'u1'], kinds: ['memory'], profiles: [] }],
      [randomUnitVector(8)],
      5,
    );
    expect(snapshot!.memories[0]?.key).toBe('k7');
    await f.memories.createAnnIndex();
    f.memories.searchSettings.exactSearchMax = 0;
    expect(
      await f.memories.searchPlan({
        scope: { prefix: ['half'] },
        vector: randomUnitVector(8),
        filter: [],
        limit: 3,
        offset: 0,
      }),
    ).toBe('ann');
    expect((await f.store.search({ namespacePrefix: ['half'], query: 'find doc 7', limit: 3 }))[0]?.key).toBe('k7');
  });

  it('a process set for float vectors refuses a schema made for half', async () => {
    await expect(checkDimensions(f.db, f.schema, TEST_DIMENSIONS, undefined, 'float')).rejects.toThrow(
      /STORE_VECTOR_STORAGE is float but schema .* was made with half/,
    );
  });
});

/**
 * An embedder may answer at any scale a float4 holds; halfvec holds at most 65,504 per element.
 * Vectors go to Postgres at unit length (cosine ignores length), so a large-scale answer is
 * stored, and ranks, as its direction.
 */
describe.each(backends)('half-precision vectors of a large-scale embedder on $name', (backend) => {
  let f: StoreFixture;
  beforeAll(async () => {
    f = await openStore(backend, { vectorStorage: 'half' });
  });
  afterAll(async () => f?.close());

  it('stores elements past halfvec range, and finds them by direction', async () => {
    const scaled = (seed: number, by: number) => randomUnitVector(seed).map((x) => x * by);
    f.embedder.fixed.set('loud', scaled(3, 1e6));
    f.embedder.fixed.set('quiet', scaled(4, 1));
    await f.store.batch([
      { op: 'put', namespace: ['scale'], key: 'loud', value: { content: 'loud' } },
      { op: 'put', namespace: ['scale'], key: 'quiet', value: { content: 'quiet' } },
    ]);
    f.embedder.fixed.set('find loud', scaled(3, 1e-3));
    const hits = await f.store.search({ namespacePrefix: ['scale'], query: 'find loud', limit: 2 });
    expect(hits.map((h) => h.key)).toEqual(['loud', 'quiet']);
    expect(hits[0]?.score).toBeCloseTo(1, 2);
  });
});
