import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tables } from '../src/store/sql.js';
import { backends, openStore, type StoreFixture } from './helpers/backends.js';

/** The size, in bytes, of the toast relation behind the vectors table (0: every row whole). */
async function toastBytes(f: StoreFixture): Promise<number> {
  const res = await f.db.query<{ bytes: unknown }>(
    `select pg_relation_size(c.reltoastrelid) as bytes from pg_class c where c.oid = to_regclass($1)`,
    [tables(f.schema).vectors],
  );
  return Number(res.rows[0]?.bytes);
}

/**
 * Vectors stay in their rows (migration 010): a 1,536-dimension embedding, 6 KB, would otherwise
 * go to the toast table in four chunks, and every put and exact search would pay for them.
 */
describe.each(backends)('vector rows on $name', (backend) => {
  let f: StoreFixture;
  beforeAll(async () => {
    f = await openStore(backend, { dimensions: 1536 });
  });
  afterAll(async () => f?.close());

  it('keeps a 1,536-dimension vector inline, and still stores and finds a row bigger than a page', async () => {
    await f.store.batch(
      Array.from({ length: 20 }, (_, i) => ({
        op: 'put' as const,
        namespace: ['inline', 'u1'],
        key: `k${i}`,
        value: { content: `the user mentioned topic ${i} and its details` },
      })),
    );
    expect(await toastBytes(f)).toBe(0);
    expect(
      (await f.store.search({ namespacePrefix: ['inline'], query: 'topic 7 and its details', limit: 1 }))[0]?.key,
    ).toBe('k7');

    // A text long enough that its row cannot fit a page is still written: the toaster moves what
    // it must out of line, as before. Hex of varied numbers, so compression cannot shrink it inline.
    const long = Array.from({ length: 1200 }, (_, i) => ((i * 2654435761) >>> 0).toString(16)).join(' ');
    await f.store.put({ namespace: ['inline', 'u1'], key: 'long', value: { content: long } });
    expect(await toastBytes(f)).toBeGreaterThan(0);
    expect((await f.store.get({ namespace: ['inline', 'u1'], key: 'long' }))?.value.content).toBe(long);
  });
});
