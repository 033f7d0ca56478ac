import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Reranker } from '../src/memory/recall.js';
import { startHarness, type Harness } from './helpers/harness.js';

/** The reranker hook: off by default (recall.test.ts), here given to the service's runtime. */
describe('recall with a reranker', () => {
  let h: Harness;
  const seen: { query: string; keys: string[] }[] = [];
  // Puts tennis first, drops peanuts, and tries to slip in a memory that was never a candidate.
  const rerank: Reranker = async (query, candidates) => {
    seen.push({ query, keys: candidates.map((c) => c.key) });
    const tennis = candidates.filter((c) => c.key === 'm2');
    const rest = candidates.filter((c) => c.key !== 'm2' && c.key !== 'm3');
    const foreign = { ...candidates[0]!, namespace: ['memories', 'u2'], key: 'secret' };
    return [...tennis, foreign, ...rest, ...tennis];
  };

  beforeAll(async () => {
    h = await startHarness({ roles: ['api'], runtime: { rerank } });
    const put = (namespace: string[], key: string, content: string) =>
      fetch(`${h.url}/v1/store/items`, {
        method: 'PUT',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ namespace, key, kind: 'memory', value: { content } }),
      });
    await put(['memories', 'u1'], 'm1', 'User loves ramen');
    await put(['memories', 'u1'], 'm2', 'User plays tennis on Sundays');
    await put(['memories', 'u1'], 'm3', 'User is allergic to peanuts');
    await put(['memories', 'u2'], 'secret', 'Another user loves ramen');
  });
  afterAll(async () => h?.stop());

  it("answers in the reranker's order, without what it dropped or invented", async () => {
    const res = await fetch(`${h.url}/v1/recall`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ context: { userId: 'u1' }, query: 'ramen' }),
    });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { memories: { key: string; namespace: string[] }[]; prompt: string };
    expect(seen.at(-1)?.query).toBe('ramen');
    expect(seen.at(-1)?.keys.sort()).toEqual(['m1', 'm2', 'm3']);
    expect(body.memories.map((m) => [m.namespace, m.key])).toEqual([
      [['memories', 'u1'], 'm2'],
      [['memories', 'u1'], 'm1'],
    ]);
    expect(body.prompt).not.toContain('peanuts');
    expect(body.prompt).not.toContain('Another user');
  });
});
