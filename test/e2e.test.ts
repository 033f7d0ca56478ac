import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { foodieModel } from './fake-model/foodie.js';
import { readPrompt } from './fake-model/server.js';
import { startHarness, threadJob, waitFor, type Harness } from './helpers/harness.js';
import { tables } from '../src/store/sql.js';

/**
 * The seeds' example, end to end through every process role: HTTP enqueue -> Redis buffer ->
 * debounced BullMQ job -> model via the openai SDK -> Postgres + pgvector -> HTTP search.
 */
describe('walking skeleton: ramen and pasta', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({ roles: ['api', 'reflection', 'scheduler'], chat: foodieModel });
  });
  afterAll(async () => h?.stop());

  const post = (threadId: string, body: unknown) =>
    fetch(`${h.url}/v1/threads/${threadId}/turns`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
  const search = async (query: string) => {
    const res = await fetch(
      `${h.url}/v1/memories/search?namespace=memories&namespace=u1&query=${encodeURIComponent(query)}`,
    );
    expect(res.status).toBe(200);
    return (
      (await res.json()) as { memories: { key: string; value: { content: string }; version: number; score: number }[] }
    ).memories;
  };

  it('remembers, then updates and deletes rather than only inserting', async () => {
    const context = { userId: 'u1' };
    // Conversation 1, in two requests within the quiet window: one reflection sees both.
    expect(
      (
        await post('conv-1', {
          context,
          messages: [{ id: 'c1-1', role: 'user', content: 'I love ramen! I also like pasta.' }],
        })
      ).status,
    ).toBe(202);
    expect(
      (
        await post('conv-1', {
          context,
          messages: [{ id: 'c1-2', role: 'assistant', content: 'Noted, ramen and pasta it is.' }],
        })
      ).status,
    ).toBe(202);

    const first = await waitFor(async () => {
      const found = await search('what food does the user like');
      return found.length === 2 ? found : null;
    });
    expect(first.map((m) => m.value.content).sort()).toEqual(['User likes pasta', 'User loves ramen']);
    expect(h.model.chatRequests).toHaveLength(1);
    expect(readPrompt(h.model.chatRequests[0]!).turns.map((t) => t.content)).toEqual([
      'I love ramen! I also like pasta.',
      'Noted, ramen and pasta it is.',
    ]);

    // Conversation 2, a later thread of the same user.
    expect(
      (
        await post('conv-2', {
          context,
          messages: [{ role: 'user', content: 'These days I like miso ramen, and I no longer like pasta.' }],
        })
      ).status,
    ).toBe(202);
    const second = await waitFor(async () => {
      const found = await search('ramen');
      return found.length === 1 && found[0]!.version === 2 ? found : null;
    });
    expect(second[0]!.value.content).toBe('User loves ramen, especially miso ramen');

    // The model was shown both existing memories under aliases, not raw keys.
    const prompt2 = readPrompt(h.model.chatRequests[1]!);
    expect(prompt2.existing.map((m) => m.id).sort()).toEqual(['m1', 'm2']);
    expect(JSON.stringify(prompt2)).not.toContain(second[0]!.key);

    // History shows an update and a delete, not a third insert.
    const ramenHistory = await h.runtime.store.history(['memories', 'u1'], second[0]!.key);
    expect(ramenHistory.map((e) => e.op)).toEqual(['insert', 'update']);
    expect(ramenHistory[1]).toMatchObject({
      before: { content: 'User loves ramen' },
      after: { content: 'User loves ramen, especially miso ramen' },
    });
    const pasta = first.find((m) => m.value.content === 'User likes pasta')!;
    expect((await h.runtime.store.history(['memories', 'u1'], pasta.key)).map((e) => e.op)).toEqual([
      'insert',
      'delete',
    ]);
    expect(h.model.chatRequests).toHaveLength(2);
  });

  it('search says what is wrong with its query string, and reads nothing', async () => {
    const embeddingsBefore = h.model.embeddingRequests;
    for (const [q, says] of [
      ['namespace=memories&namespace=u1&query=ramen&refreshTtl=yes', 'refreshTtl'],
      ['namespace=memories&namespace=u1&query=ramen&refreshTtl=TRUE', 'refreshTtl'],
      ['namespace=memories&namespace=u1&query=', 'query'],
      ['namespace=memories&namespace=u1&query=ramen&limit=0', 'limit'],
    ] as const) {
      const res = await fetch(`${h.url}/v1/memories/search?${q}`);
      expect(res.status, q).toBe(400);
      expect(JSON.stringify(await res.json()), q).toContain(says);
    }
    expect(h.model.embeddingRequests).toBe(embeddingsBefore);
  });

  it('search over HTTP renews the TTL of what it returns unless refreshTtl=false', async () => {
    const put = await fetch(`${h.url}/v1/store/items`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        namespace: ['memories', 'u1'],
        key: 'ttl-probe',
        value: { content: 'User eats ramen weekly' },
        ttl: 3_600_000,
      }),
    });
    expect(put.status).toBe(200);
    // A minute left of an hour's TTL: due for renewal.
    const expiry = async () => {
      const res = await h.runtime.db.query<{ left: number }>(
        `select extract(epoch from expires_at - now()) as left from ${tables(h.runtime.store.schema).memories} where key = 'ttl-probe'`,
      );
      return Number(res.rows[0]!.left);
    };
    await h.runtime.db.query(
      `update ${tables(h.runtime.store.schema).memories} set expires_at = now() + interval '1 minute' where key = 'ttl-probe'`,
    );
    const search = async (flag: string) => {
      const res = await fetch(
        `${h.url}/v1/memories/search?namespace=memories&namespace=u1&query=ramen&limit=100&refreshTtl=${flag}`,
      );
      expect(res.status).toBe(200);
      expect(((await res.json()) as { memories: { key: string }[] }).memories.map((m) => m.key)).toContain('ttl-probe');
    };
    await search('false');
    expect(await expiry()).toBeLessThan(61);
    await search('true');
    expect(await expiry()).toBeGreaterThan(3_500);
  });
});

describe('a later turn with a shorter quiet window', () => {
  let h: Harness;
  beforeAll(async () => {
    // A long default window: a reflection that waited it out would not come within the test's wait.
    h = await startHarness({
      roles: ['reflection'],
      chat: () => ({ content: 'nothing to remember' }),
      env: { DEBOUNCE_MS: '60000', MAX_WAIT_MS: '120000' },
    });
  });
  afterAll(async () => h?.stop());

  it('moves the delayed job earlier, so the thread reflects once it has been quiet that long', async () => {
    const send = (content: string, debounceMs?: number) =>
      h.runtime.producer.enqueue({
        threadId: 'short',
        context: { userId: 'u1' },
        messages: [{ role: 'user', content }],
        ...(debounceMs !== undefined && { debounceMs }),
      });
    await send('first');
    await send('second', 200);
    await waitFor(() => h.model.chatRequests.length === 1, { timeoutMs: 15_000 });
    expect(readPrompt(h.model.chatRequests[0]!).turns.map((t) => t.content)).toEqual(['first', 'second']);
  });
});

describe('a later turn with a shorter window while the job waits out a retry backoff', () => {
  let h: Harness;
  const calls: number[] = [];
  beforeAll(async () => {
    h = await startHarness({
      roles: ['reflection'],
      // The first request fails: the job is delayed for its backoff, a minute here.
      chat: () => {
        calls.push(Date.now());
        return calls.length === 1 ? { status: 500, error: 'down once' } : { content: 'nothing to remember' };
      },
      env: { DEBOUNCE_MS: '100', MAX_WAIT_MS: '600000', REFLECTION_BACKOFF_MS: '60000', REFLECTION_ATTEMPTS: '5' },
    });
  });
  afterAll(async () => h?.stop());

  it('leaves the backoff as it is: the failed attempt is not retried early', async () => {
    const send = (content: string, debounceMs?: number) =>
      h.runtime.producer.enqueue({
        threadId: 'backoff',
        context: { userId: 'u1' },
        messages: [{ role: 'user', content }],
        ...(debounceMs !== undefined && { debounceMs }),
      });
    await send('first');
    await waitFor(async () => {
      const job = await threadJob(h.runtime, 'backoff');
      return job?.attemptsMade === 1 && (await job.getState()) === 'delayed';
    });
    expect(calls).toHaveLength(1);
    // The first turn since the attempt asks for a job (found, kept), with a long window; the next
    // asks for a shorter one, which would move a job waiting out its debounce.
    await send('second', 30_000);
    await send('third', 100);
    await new Promise((r) => setTimeout(r, 2_000));
    expect(calls).toHaveLength(1);
    expect(await (await threadJob(h.runtime, 'backoff'))?.getState()).toBe('delayed');
  });
});
