import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { backends, openStore, type StoreFixture } from './helpers/backends.js';

/**
 * Labels that widen a match when namespaces are joined into strings and compared with LIKE or
 * globs (LangGraph: ("foo") found ("foobar")). Each sits next to the namespaces it could leak into.
 */
const NAMESPACES: string[][] = [
  ['foo'],
  ['foobar'],
  ['foo', 'bar'],
  ['foo.bar'],
  ['foo:bar'],
  ['foo|bar'],
  ['fo%'],
  ['fo_'],
  ['fo*'],
  ['fo\\'],
  ['fo\\%'],
  ['%'],
  ['_'],
  ['*'],
  ['\\'],
  ['.'],
  ['foo\u0001'],
  ['föo'],
  ['tenant', 'a'],
  ['tenant', 'a', 'x'],
  ['tenant', 'ab'],
  ['tenant', 'a%'],
  ['tenant', 'b', 'a'],
];

describe.each(backends)('namespaces on $name', (backend) => {
  let f: StoreFixture;
  beforeAll(async () => {
    f = await openStore(backend);
    await f.store.batch(
      NAMESPACES.map((namespace) => ({
        op: 'put' as const,
        namespace,
        key: 'k',
        value: { content: `item of ${JSON.stringify(namespace)}` },
      })),
    );
  });
  afterAll(async () => f?.close());

  const expected = (prefix: string[]) =>
    NAMESPACES.filter((ns) => prefix.every((label, i) => ns[i] === label))
      .map((ns) => JSON.stringify(ns))
      .sort();
  const found = (items: { namespace: string[] }[]) => items.map((i) => JSON.stringify(i.namespace)).sort();

  it('a prefix matches whole labels only, whatever characters the labels hold (search, query search, list)', async () => {
    const prefixes = [
      ...NAMESPACES.map((ns) => [ns[0] as string]),
      ['tenant', 'a'],
      ['tenant', 'a%'],
      ['fo'],
      ['tenant', '%'],
      ['tenant', '_'],
      ['tenant', '*'],
    ];
    for (const prefix of prefixes) {
      const want = expected(prefix);
      expect(found(await f.store.search({ namespacePrefix: prefix, limit: 100 })), JSON.stringify(prefix)).toEqual(
        want,
      );
      expect(
        found(await f.store.search({ namespacePrefix: prefix, query: 'item', limit: 100 })),
        JSON.stringify(prefix),
      ).toEqual(want);
      expect(
        (await f.store.listNamespaces({ prefix })).map((ns) => JSON.stringify(ns)).sort(),
        JSON.stringify(prefix),
      ).toEqual(want);
    }
    // The cases of the issue, spelled out.
    expect(expected(['foo'])).toEqual(['["foo","bar"]', '["foo"]']);
    expect(expected(['tenant', 'a'])).toEqual(['["tenant","a","x"]', '["tenant","a"]']);
    expect(expected(['%'])).toEqual(['["%"]']);
  });

  it('get matches the exact namespace only', async () => {
    expect(await f.store.get({ namespace: ['foo'], key: 'k' })).toMatchObject({ namespace: ['foo'] });
    expect(await f.store.get({ namespace: ['fo%'], key: 'k' })).toMatchObject({ namespace: ['fo%'] });
    expect(await f.store.get({ namespace: ['fo_'], key: 'k' })).toMatchObject({ namespace: ['fo_'] });
    expect(await f.store.get({ namespace: ['tenant'], key: 'k' })).toBeNull();
  });

  it('lists namespaces by prefix, suffix and depth, with limit and offset, sorted byte-wise', async () => {
    expect(await f.store.listNamespaces({ prefix: ['tenant'], maxDepth: 2 })).toEqual([
      ['tenant', 'a'],
      ['tenant', 'a%'],
      ['tenant', 'ab'],
      ['tenant', 'b'],
    ]);
    expect(await f.store.listNamespaces({ suffix: ['a'] })).toEqual([
      ['tenant', 'a'],
      ['tenant', 'b', 'a'],
    ]);
    expect(await f.store.listNamespaces({ prefix: ['tenant'], suffix: ['x'] })).toEqual([['tenant', 'a', 'x']]);
    expect(await f.store.listNamespaces({ suffix: ['%'] })).toEqual([['%']]);
    expect(await f.store.listNamespaces({ maxDepth: 1, limit: 3 })).toEqual([['%'], ['*'], ['.']]);
    const all = await f.store.listNamespaces({ limit: 1000 });
    expect(all).toHaveLength(NAMESPACES.length);
    expect(await f.store.listNamespaces({ limit: 5, offset: 5 })).toEqual(all.slice(5, 10));
  });

  it('a namespace whose items are all deleted is no longer listed', async () => {
    await f.store.put({ namespace: ['gone', 'soon'], key: 'k', value: { x: 1 } });
    expect(await f.store.listNamespaces({ prefix: ['gone'] })).toEqual([['gone', 'soon']]);
    await f.store.delete({ namespace: ['gone', 'soon'], key: 'k' });
    expect(await f.store.listNamespaces({ prefix: ['gone'] })).toEqual([]);
  });
});

describe.each(backends)('filters on $name', (backend) => {
  let f: StoreFixture;
  const ns = ['filters'];
  const VALUES: Record<string, Record<string, unknown>> = {
    n9: { n: 9, s: 'b' },
    n10: { n: 10, s: 'a' },
    n10f: { n: 10.0, s: 'c' },
    s9: { n: '9', s: 'B' },
    s10: { n: '10' },
    nul: { n: null },
    none: { other: true },
    nested: { profile: { age: 30, tags: ['x', 'y'], name: 'Ann' }, n: 2.5 },
    arr: { n: [9, 10], items: [{ id: 1 }, { id: 2 }] },
  };
  beforeAll(async () => {
    f = await openStore(backend);
    await f.store.batch(
      Object.entries(VALUES).map(([key, value]) => ({
        op: 'put' as const,
        namespace: ns,
        key,
        value,
        index: false as const,
      })),
    );
  });
  afterAll(async () => f?.close());

  const keys = async (filter: Record<string, unknown>) =>
    (await f.store.search({ namespacePrefix: ns, filter, limit: 100 })).map((h) => h.key).sort();

  it('compares numbers as numbers and strings as strings (never 9 > 10 by text)', async () => {
    expect(await keys({ n: { $gt: 9 } })).toEqual(['n10', 'n10f']);
    expect(await keys({ n: { $gte: 9, $lt: 10 } })).toEqual(['n9']);
    expect(await keys({ n: { $lte: 9 } })).toEqual(['n9', 'nested']);
    // Strings compare byte-wise with strings only: '9' > '10' as text, and numbers never match.
    expect(await keys({ n: { $gt: '10' } })).toEqual(['s9']);
    expect(await keys({ s: { $lt: 'b' } })).toEqual(['n10', 's9']);
  });

  it('$eq (plain or explicit), $ne, $in, $nin, $exists, on nested paths and array elements', async () => {
    expect(await keys({ n: 10 })).toEqual(['n10', 'n10f']);
    expect(await keys({ n: { $eq: '10' } })).toEqual(['s10']);
    expect(await keys({ n: null })).toEqual(['nul']);
    expect(await keys({ n: [9, 10] })).toEqual(['arr']);
    expect(await keys({ n: { $ne: 10 } })).toEqual(['arr', 'nested', 'none', 'nul', 's10', 's9', 'n9'].sort());
    expect(await keys({ n: { $in: [9, '10'] } })).toEqual(['n9', 's10']);
    expect(await keys({ n: { $nin: [9, 10, '9', '10'] } })).toEqual(['arr', 'nested', 'none', 'nul']);
    expect(await keys({ n: { $exists: false } })).toEqual(['none']);
    expect(await keys({ n: { $exists: true }, s: { $exists: true } })).toEqual(['n10', 'n10f', 'n9', 's9']);
    expect(await keys({ 'profile.age': { $gte: 18 } })).toEqual(['nested']);
    expect(await keys({ 'profile.name': 'Ann', 'profile.tags': ['x', 'y'] })).toEqual(['nested']);
    expect(await keys({ 'profile.tags[1]': 'y' })).toEqual(['nested']);
    expect(await keys({ 'items[1].id': { $gt: 1 } })).toEqual(['arr']);
    expect(await keys({ 'profile.missing.deep': { $exists: false }, 'profile.age': 30 })).toEqual(['nested']);
  });

  it('a literal object value is an equality match; an unknown $operator is refused', async () => {
    expect(await keys({ profile: { age: 30, tags: ['x', 'y'], name: 'Ann' } })).toEqual(['nested']);
    await expect(f.store.search({ namespacePrefix: ns, filter: { n: { $gt: 1, $foo: 2 } } })).rejects.toThrow(
      /unknown operator/,
    );
  });
});
