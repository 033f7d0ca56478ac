import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { PermanentError, UnavailableError, type EngramClientOptions } from '../src/sdk/index.js';
import { sdkClient, startHarness, TEST_DIMENSIONS, type Harness } from './helpers/harness.js';
import { closedPort } from './helpers/ports.js';

/** What a call threw (it must throw). */
const failure = (work: Promise<unknown>) =>
  work.then(
    () => expect.fail('the call succeeded'),
    (err: unknown) => err as Error,
  );

/**
 * The SDK opens a database and an embedding endpoint it did not set up: when they are not the
 * service's, or not there, its errors must name the option to change, and the right server.
 */
describe("the SDK's errors for its store", () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({ roles: ['api'] });
  });
  afterAll(async () => h?.stop());

  const client = (over: Partial<EngramClientOptions>) => {
    const sdk = sdkClient(h, over);
    onTestFinished(() => sdk.close());
    return sdk;
  };

  it('says Postgres, not Redis, when the database refuses the connection', async () => {
    const sdk = client({ databaseUrl: `postgres://postgres@127.0.0.1:${await closedPort()}/postgres` });
    const calls = [
      sdk.search({ namespace: ['memories', 'u1'], query: 'tea' }),
      sdk.recall({ context: { userId: 'u1' }, query: 'tea' }),
      sdk.store.get(['memories', 'u1'], 'k'),
      sdk.memoryTools({ context: { userId: 'u1' } }).runToolCall({
        id: 'c1',
        type: 'function',
        function: { name: 'search_memory', arguments: '{"query":"tea"}' },
      }),
    ];
    for (const err of await Promise.all(calls.map(failure))) {
      expect(err).toBeInstanceOf(UnavailableError);
      expect((err as UnavailableError).dependency).toBe('postgres');
      expect(err.message).toMatch(
        /^the memory store \(Postgres\) is not reachable \(connect ECONNREFUSED .*databaseUrl/,
      );
    }
    // Its enqueue still reaches Redis: the turns are not the store's business.
    expect(
      await sdk.enqueue({ threadId: 't1', context: { userId: 'u1' }, messages: [{ role: 'user', content: 'hi' }] }),
    ).toMatchObject({ accepted: 1 });
  });

  it("names the schema option when the client's schema holds no engram tables", async () => {
    const err = await failure(
      client({ schema: 'engram_not_migrated' }).search({ namespace: ['memories', 'u1'], query: 'tea' }),
    );
    expect(err).toBeInstanceOf(PermanentError);
    expect(err.message).toMatch(
      /does not exist; the client's `schema` holds no engram tables: give it the service's DATABASE_SCHEMA/,
    );
  });

  it("names embedding.dimensions when the client's embeddings are not the store's size, empty namespace or not", async () => {
    await h.runtime.storeApi.put({ namespace: ['memories', 'u1'], key: 'tea', value: { content: 'User likes tea' } });
    const sdk = client({ embedding: { apiKey: 'test-key', baseURL: h.model.url, dimensions: TEST_DIMENSIONS * 2 } });
    const requestsBefore = h.model.embeddingRequests;
    // An empty namespace has no row to compare with: it answered [] before the client checked.
    const calls = [
      sdk.search({ namespace: ['memories', 'nobody-yet'], query: 'tea' }),
      sdk.search({ namespace: ['memories', 'u1'], query: 'tea' }),
      sdk.store.search(['memories', 'nobody-yet'], { query: 'tea' }),
      sdk.store.put(['memories', 'u2'], 'coffee', { content: 'User likes coffee' }),
    ];
    for (const err of await Promise.all(calls.map(failure))) {
      expect(err).toBeInstanceOf(PermanentError);
      expect(err.message).toMatch(
        new RegExp(
          `embeddings have ${TEST_DIMENSIONS * 2} dimensions but the store .* was made for ${TEST_DIMENSIONS}: give \`embedding.dimensions\``,
        ),
      );
    }
    // Refused before any embedding was asked for, and nothing written.
    expect(h.model.embeddingRequests).toBe(requestsBefore);
    expect(await h.runtime.storeApi.get({ namespace: ['memories', 'u2'], key: 'coffee' })).toBeNull();
    // The right size passes the same check.
    expect(await client({}).search({ namespace: ['memories', 'nobody-yet'], query: 'tea' })).toEqual([]);
  });
});
