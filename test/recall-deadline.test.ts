import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { UnavailableError } from '../src/errors.js';
import { sdkClient, startHarness, TEST_DIMENSIONS, type Harness } from './helpers/harness.js';

/**
 * A read's query embedding has a deadline of its own (QUERY_EMBEDDING_TIMEOUT_MS): with the
 * embedding endpoint taking connections and never answering, a recall answered after 4 x 60 s
 * over HTTP and 4 x 30 s in the SDK. The endpoint here has the service's default timeout and
 * retries, so that any of these tests would pass its 20 s without the deadline only by luck.
 */
const DEADLINE_MS = 1_000;
const WITHIN = 20_000;

async function post(h: Harness, path: string, body: unknown) {
  const res = await fetch(`${h.url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as Record<string, any> };
}

describe('reads with a stalled embedding endpoint', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({
      roles: ['api'],
      env: { LLM_TIMEOUT_MS: '60000', LLM_MAX_RETRIES: '3', QUERY_EMBEDDING_TIMEOUT_MS: String(DEADLINE_MS) },
    });
    for (const [key, content] of [
      ['diet', 'User is vegetarian'],
      ['sport', 'User plays tennis on Sundays'],
    ]) {
      const res = await fetch(`${h.url}/v1/store/items`, {
        method: 'PUT',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ namespace: ['memories', 'u1'], key, value: { content } }),
      });
      expect(res.status).toBe(200);
    }
    h.model.stallEmbeddings = true;
  });
  afterAll(async () => h?.stop());

  it(
    'HTTP: recall answers ranked by text within its deadline, saying why; searches that need a vector fail with 503',
    async () => {
      const r = await post(h, '/v1/recall', { context: { userId: 'u1' }, query: 'vegetarian' });
      expect(r.status).toBe(200);
      expect(r.body.degraded).toEqual({
        ranking: 'text',
        reason: `embedding model text-embedding-3-small did not embed the query within ${DEADLINE_MS} ms (QUERY_EMBEDDING_TIMEOUT_MS)`,
      });
      expect(r.body.memories.map((m: any) => m.value.content)).toEqual(['User is vegetarian']);
      expect(await h.runtime.metrics.registry.metrics()).toMatch(
        /^engram_search_duration_seconds_count\{op="recall",outcome="degraded"\} 1$/m,
      );

      const search = await fetch(`${h.url}/v1/memories/search?namespace=memories&namespace=u1&query=vegetarian`);
      expect(search.status).toBe(503);
      expect(((await search.json()) as { error: string }).error).toMatch(
        /text-embedding-3-small did not embed the query within 1000 ms/,
      );
      const store = await post(h, '/v1/store/items/search', { namespacePrefix: ['memories'], query: 'vegetarian' });
      expect(store.status).toBe(503);
      expect(store.body.error).toMatch(/within 1000 ms \(QUERY_EMBEDDING_TIMEOUT_MS\)/);
    },
    WITHIN,
  );

  it(
    'SDK: recall answers ranked by text within queryEmbeddingTimeoutMs, and warns once; search rejects with UnavailableError',
    async () => {
      const lines: string[] = [];
      const log = pino({ level: 'warn' }, { write: (s: string) => void lines.push(s) });
      // The client's own embedder retries 3 times at 30 s a request, as an application's would.
      const engram = sdkClient(h, { queryEmbeddingTimeoutMs: DEADLINE_MS, log });
      onTestFinished(() => engram.close());

      for (let i = 0; i < 2; i++) {
        const r = await engram.recall({ context: { userId: 'u1' }, query: 'vegetarian' });
        expect(r.degraded).toEqual({
          ranking: 'text',
          reason: `embedding model text-embedding-3-small did not embed the query within ${DEADLINE_MS} ms (queryEmbeddingTimeoutMs)`,
        });
        expect(r.memories.map((m) => m.value.content)).toEqual(['User is vegetarian']);
      }
      // Said once: during an outage every recall degrades alike.
      const warnings = lines.map((l) => JSON.parse(l) as { msg: string; reason?: string });
      expect(warnings.filter((w) => w.msg.startsWith('recall ranked by text alone'))).toEqual([
        expect.objectContaining({ level: 40, reason: expect.stringMatching(/within 1000 ms/), heldBack: 0 }),
      ]);

      const search = engram.search({ namespace: ['memories', 'u1'], query: 'vegetarian' });
      await expect(search).rejects.toThrow(UnavailableError);
      await expect(search).rejects.toMatchObject({
        dependency: 'embedding-model',
        message: expect.stringMatching(/text-embedding-3-small did not embed the query within 1000 ms/),
      });
      await expect(engram.store.search(['memories'], { query: 'vegetarian' })).rejects.toThrow(UnavailableError);
      // Asked for vectors only, a recall fails as a search does: the caller chose the ranking.
      await expect(engram.recall({ context: { userId: 'u1' }, query: 'tennis', mode: 'vector' })).rejects.toThrow(
        UnavailableError,
      );
    },
    WITHIN,
  );

  it(
    "SDK: a caller's signal that ends first still rejects with its own reason",
    async () => {
      const engram = sdkClient(h, { queryEmbeddingTimeoutMs: 10_000 });
      onTestFinished(() => engram.close());
      const reason = new Error('the user left');
      const controller = new AbortController();
      setTimeout(() => controller.abort(reason), 200);
      await expect(
        engram.recall({ context: { userId: 'u1' }, query: 'vegetarian' }, { signal: controller.signal }),
      ).rejects.toBe(reason);
    },
    WITHIN,
  );

  it(
    "SDK: an application's own embedder that ignores the signal is held to the deadline too",
    async () => {
      const embedder = { dimensions: TEST_DIMENSIONS, embed: () => new Promise<number[][]>(() => {}) };
      const engram = sdkClient(h, { embedder, queryEmbeddingTimeoutMs: 500 });
      onTestFinished(() => engram.close());
      const r = await engram.recall({ context: { userId: 'u1' }, query: 'tennis' });
      expect(r.degraded?.reason).toBe(
        "embedding model (the client's `embedder`) did not embed the query within 500 ms (queryEmbeddingTimeoutMs)",
      );
      expect(r.memories.map((m) => m.value.content)).toEqual(['User plays tennis on Sundays']);
    },
    WITHIN,
  );

  it('a healthy endpoint again: recall ranks by vector as well, not degraded', async () => {
    h.model.stallEmbeddings = false;
    const r = await post(h, '/v1/recall', { context: { userId: 'u1' }, query: 'vegetarian' });
    expect(r.status).toBe(200);
    expect(r.body).not.toHaveProperty('degraded');
  });
});
