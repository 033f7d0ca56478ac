import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHarness, type Harness } from './helpers/harness.js';
import { send } from './helpers/hostile.js';

/**
 * Issue 15: a request of a few kilobytes used to make an answer of gigabytes (a batch of 100
 * searches over 1 MB items, a history page of 300 versions): a 500 at 30 ops, heap exhaustion at
 * 100. Every store read now spends one budget per answer (STORE_ANSWER_MAX_BYTES, 8 MiB here so
 * that a dozen items pass it), and one that would pass it is a 413 saying what to ask instead.
 */
describe('the bytes of one answer are bounded', () => {
  const MAX = 8 * 1024 * 1024;
  const ITEMS = 12;
  const blob = 'x'.repeat(990_000);
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({ roles: ['api'], env: { STORE_ANSWER_MAX_BYTES: String(MAX) } });
    for (let i = 0; i < ITEMS; i++) {
      const big = { namespace: ['oom', String(i)], key: 'k', value: { blob }, index: false };
      expect((await send(h, 'PUT', '/v1/store/items', JSON.stringify(big))).status).toBe(200);
      // Embedded by a small field: /v1/memories/search ranks them, and reads the blobs back.
      const found = { namespace: ['found'], key: `k${i}`, value: { tag: 'tea', blob }, index: ['tag'] };
      expect((await send(h, 'PUT', '/v1/store/items', JSON.stringify(found))).status).toBe(200);
    }
    // Memories of the default kind for user `big`, each a megabyte: what recall ranks.
    for (let i = 0; i < ITEMS; i++) {
      const memory = {
        namespace: ['memories', 'big'],
        key: `m${i}`,
        kind: 'memory',
        value: { content: `User likes tea number ${i}`, blob },
        index: ['content'],
      };
      expect((await send(h, 'PUT', '/v1/store/items', JSON.stringify(memory))).status).toBe(200);
    }
    for (let v = 0; v < 6; v++) {
      const version = { namespace: ['hist'], key: 'k', value: { v, blob }, index: false };
      expect((await send(h, 'PUT', '/v1/store/items', JSON.stringify(version))).status).toBe(200);
    }
  }, 120_000);
  afterAll(async () => h?.stop());

  const post = (path: string, body: unknown) => send(h, 'POST', path, JSON.stringify(body));
  const search = { op: 'search', namespacePrefix: ['oom'], limit: 100 };

  it('a batch whose reads would pass the budget is a 413 naming it and what to ask for', async () => {
    const answer = await post('/v1/store/batch', { ops: Array.from({ length: 30 }, () => search) });
    expect(answer.status, JSON.stringify(answer.body).slice(0, 300)).toBe(413);
    expect(answer.body.error).toMatch(/larger than 8388608 bytes \(STORE_ANSWER_MAX_BYTES\).*fewer ops.*`limit`/);
    // Gets count too: each is within it, together they are not.
    const gets = Array.from({ length: ITEMS }, (_, i) => ({ op: 'get', namespace: ['oom', String(i)], key: 'k' }));
    expect((await post('/v1/store/batch', { ops: gets })).status).toBe(413);
    expect((await post('/v1/store/batch', { ops: gets.slice(0, 4) })).status).toBe(200);
  });

  it('a recall keeps the best candidates that fit, instead of refusing or carrying them all', async () => {
    for (const mode of ['hybrid', 'vector', 'text']) {
      const answer = await post('/v1/recall', { context: { userId: 'big' }, query: 'tea', mode, limit: ITEMS });
      expect(answer.status, JSON.stringify(answer.body).slice(0, 300)).toBe(200);
      const memories = answer.body.memories as { value: { blob: string } }[];
      // 8 MiB holds eight of the twelve; a recall without the budget returned all twelve.
      expect(memories.length, mode).toBeGreaterThan(0);
      expect(memories.length, mode).toBeLessThanOrEqual(8);
      expect(memories.every((m) => m.value.blob === blob)).toBe(true);
    }
  });

  it('a search over the budget is a 413, a smaller page of it is answered whole', async () => {
    const all = await post('/v1/store/items/search', { namespacePrefix: ['oom'], limit: 100 });
    expect(all.status).toBe(413);
    expect(all.body.error).toMatch(/smaller `limit` and page with `offset`/);
    const page = await post('/v1/store/items/search', { namespacePrefix: ['oom'], limit: 5, offset: 5 });
    expect(page.status).toBe(200);
    expect(page.body.items).toHaveLength(5);
    expect(page.body.items.every((i: { value: { blob: string } }) => i.value.blob === blob)).toBe(true);
    const ranked = await send(h, 'GET', '/v1/memories/search?namespace=found&query=tea&limit=100');
    expect(ranked.status).toBe(413);
    expect(ranked.body.error).toMatch(/STORE_ANSWER_MAX_BYTES/);
    const fewer = await send(h, 'GET', '/v1/memories/search?namespace=found&query=tea&limit=4');
    expect(fewer.status).toBe(200);
    expect(fewer.body.memories).toHaveLength(4);
  });

  it('a history page over the budget is a 413; a smaller one is answered', async () => {
    // Each update row carries the document before and after: about 2 MB.
    const all = await send(h, 'GET', '/v1/store/items/history?namespace=hist&key=k&limit=1000');
    expect(all.status).toBe(413);
    expect(all.body.error).toMatch(/smaller `limit`/);
    const page = await send(h, 'GET', '/v1/store/items/history?namespace=hist&key=k&limit=3');
    expect(page.status).toBe(200);
    expect(page.body.history.map((e: { version: number }) => e.version)).toEqual([1, 2, 3]);
  });

  it('small answers are as they were', async () => {
    await post('/v1/store/batch', {
      ops: [
        { op: 'put', namespace: ['small'], key: 'a', value: { n: 1 } },
        { op: 'put', namespace: ['small'], key: 'b', value: { n: 2 } },
      ],
    });
    const answer = await post('/v1/store/batch', {
      ops: [
        { op: 'get', namespace: ['small'], key: 'a' },
        { op: 'search', namespacePrefix: ['small'], filter: { n: 2 } },
        { op: 'listNamespaces', prefix: ['small'] },
      ],
    });
    expect(answer.status).toBe(200);
    const [got, hits, namespaces] = answer.body.results;
    expect(got.value).toEqual({ n: 1 });
    expect(hits.map((i: { key: string }) => i.key)).toEqual(['b']);
    expect(Object.keys(hits[0]).sort()).toEqual(
      [
        'createdAt',
        'expiresAt',
        'invalidAt',
        'key',
        'kind',
        'namespace',
        'score',
        'updatedAt',
        'validFrom',
        'value',
        'version',
      ].sort(),
    );
    expect(namespaces).toEqual([['small']]);
  });
});
