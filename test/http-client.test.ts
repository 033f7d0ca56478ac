import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  AuthError,
  ConflictError,
  EngramHttpClient,
  InputError,
  LimitError,
  PermanentError,
  UnavailableError,
} from '../src/client/index.js';
import { startHarness, TEST_DATABASE_URL, type Harness } from './helpers/harness.js';
import { HOSTILE_API_KEYS, HOSTILE_KEYS, tenantKind } from './helpers/hostile.js';
import { FlakyHttpProxy } from './helpers/http-proxy.js';
import { StallProxy } from './helpers/stall-proxy.js';

const NS = ['memories', 'u1'];
const turn = (id?: string) => ({ role: 'user' as const, content: 'I like green tea', ...(id && { id }) });
/** What a call threw (it must throw). */
const failure = (work: Promise<unknown>) =>
  work.then(
    () => expect.fail('the call succeeded'),
    (err: unknown) => err as Error,
  );

describe('engram/client against a running API', () => {
  const redis = new StallProxy();
  const postgres = new StallProxy(new URL(TEST_DATABASE_URL));
  let pgPort = 0;
  let h: Harness;
  let flaky: FlakyHttpProxy;
  let client: EngramHttpClient;
  beforeAll(async () => {
    const redisUrl = await redis.start();
    const pgUrl = await postgres.start();
    pgPort = Number(new URL(pgUrl).port);
    h = await startHarness({
      roles: ['api'],
      // The API's own deadline on a stalled Redis is longer than the client's, which must win.
      env: { REDIS_URL: redisUrl, DATABASE_URL: pgUrl, ENQUEUE_TIMEOUT_MS: '10000' },
    });
    flaky = new FlakyHttpProxy(h.url);
    client = new EngramHttpClient({ url: await flaky.start(), retry: { baseDelayMs: 5 } });
  });
  afterAll(async () => {
    redis.resume();
    if (!postgres.listening) await postgres.start(pgPort);
    await flaky?.stop();
    await h?.stop();
    await redis.stop();
    await postgres.stop();
  });
  beforeEach(() => {
    flaky.failNext = 0;
    flaky.drop = false;
  });

  it("makes the SDK's calls over HTTP and returns what the SDK returns, Dates included", async () => {
    expect(await client.enqueue({ threadId: 't1', context: { userId: 'u1' }, messages: [turn('m1')] })).toEqual({
      threadId: 't1',
      accepted: 1,
      duplicates: 0,
    });
    const again = await client.enqueue({ threadId: 't1', context: { userId: 'u1' }, messages: [turn('m1')] });
    expect(again).toMatchObject({ accepted: 0, duplicates: 1 });

    const put = await client.store.put(NS, 'k1', { content: 'User likes green tea' });
    expect(put).toMatchObject({ namespace: NS, key: 'k1', version: 1, kind: 'memory' });
    expect(put.createdAt).toBeInstanceOf(Date);
    // The very item the store holds, as the SDK would return it.
    expect(await client.store.get(NS, 'k1', { refreshTtl: false })).toEqual(
      await h.runtime.storeApi.get({ namespace: NS, key: 'k1', refreshTtl: false }),
    );
    expect(await client.store.get(NS, 'missing')).toBeNull();

    const items = await client.store.search(['memories'], { query: 'green tea', refreshTtl: false });
    expect(items.map((i) => [i.key, typeof i.score])).toEqual([['k1', 'number']]);
    const memories = await client.search({ namespace: NS, query: 'green tea', limit: 5 });
    expect(memories.map((m) => m.key)).toEqual(['k1']);
    expect(memories[0]?.updatedAt).toBeInstanceOf(Date);
    const recalled = await client.recall({ context: { userId: 'u1' }, query: 'green tea' });
    expect(recalled.memories.map((m) => m.key)).toEqual(['k1']);
    expect(recalled.prompt).toContain('User likes green tea');

    expect(await client.store.listNamespaces()).toContainEqual(NS);
    const [got, listed] = await client.store.batch([
      { op: 'get', namespace: NS, key: 'k1' },
      { op: 'listNamespaces', prefix: ['memories'] },
    ]);
    expect(got).toMatchObject({ key: 'k1', version: 1 });
    expect(listed).toEqual([NS]);
    const history = await client.store.history(NS, 'k1', { limit: 10 });
    expect(history.map((e) => [e.op, e.version, e.at instanceof Date])).toEqual([['insert', 1, true]]);

    expect(await client.store.delete(NS, 'k1', { ifVersion: 1 })).toBe(true);
    expect(await client.store.get(NS, 'k1')).toBeNull();
  });

  it("maps refusals to the SDK's error classes, with the server's message and details", async () => {
    const bad = await failure(client.store.put([], 'k', {}));
    expect(bad).toBeInstanceOf(InputError);
    expect(bad.message).toMatch(/^invalid put request: .*namespace/s);
    expect((bad as InputError).details).toEqual([expect.objectContaining({ path: ['namespace'] })]);

    await client.store.put(NS, 'k2', { content: 'x' });
    const stale = await failure(client.store.put(NS, 'k2', { content: 'y' }, { ifVersion: 70 }));
    expect(stale).toBeInstanceOf(ConflictError);
    expect((stale as ConflictError).details).toBeTruthy();

    // Straight to the API: a body the API refuses before reading it all is no proxy's business.
    const direct = new EngramHttpClient({ url: h.url });
    const big = await failure(direct.store.put(NS, 'k3', { text: 'x'.repeat(5 * 1024 * 1024) }));
    expect(big).toBeInstanceOf(LimitError);
    expect(big.message).toMatch(/at most 4 MiB/);

    // A wrong base URL is a mistake to report, not an item that is missing.
    const wrong = new EngramHttpClient({ url: `${h.url}/not-engram` });
    const lost = await failure(wrong.store.get(NS, 'k2'));
    expect(lost).toBeInstanceOf(PermanentError);
    expect(lost.message).toMatch(/^no route GET/);
    // The usual slip, a url ending in /v1, says which option to change and how.
    const doubled = await failure(
      new EngramHttpClient({ url: `${h.url}/v1` }).recall({ context: { userId: 'u1' }, query: 'tea' }),
    );
    expect(doubled).toBeInstanceOf(PermanentError);
    expect(doubled.message).toContain(`no route POST /v1/v1/recall; is ${h.url}/v1 the engram API's base URL?`);
    expect(doubled.message).toContain('without /v1');

    expect(() => new EngramHttpClient({ url: 'ftp://example.com' })).toThrow(InputError);
    expect(() => new EngramHttpClient({ url: 'ftp://example.com' })).toThrow(
      /must be an http:\/\/ or https:\/\/ URL of the engram API\n {2}→ at url/,
    );
  });

  /** `call` with the proxy failing its next `failures` requests: its result, and the requests it sent. */
  const through = async <T>(failures: number, call: () => Promise<T>) => {
    flaky.failNext = failures;
    const before = flaky.requests;
    const result = await call();
    return { result, sent: flaky.requests - before };
  };

  it('retries a read after a 503 or a lost connection, within its attempts', async () => {
    await client.store.put(NS, 'k2', { content: 'x' });
    const read = await through(2, () => client.store.get(NS, 'k2'));
    expect(read.result).toMatchObject({ key: 'k2' });
    expect(read.sent).toBe(3);

    flaky.drop = true;
    const dropped = await through(1, () => client.store.listNamespaces({ prefix: ['memories'] }));
    expect(dropped.result).toEqual([NS]);
    expect(dropped.sent).toBe(2);

    // Three attempts (the default), then the 503 as an UnavailableError with the server's message.
    flaky.drop = false;
    const down = await through(10, () => failure(client.search({ namespace: NS, query: 'tea' })));
    expect(down.result).toBeInstanceOf(UnavailableError);
    expect(down.result.message).toMatch(/Postgres\) is not reachable/);
    expect(down.sent).toBe(3);
  });

  it("retries a read after a gateway's 429, after its Retry-After, and reports a write's", async () => {
    const defaults = flaky.failure;
    flaky.failure = { status: 429, headers: { 'retry-after': '0' }, body: '<html>Too Many Requests</html>' };
    try {
      await client.store.put(NS, 'k429', { content: 'x' });
      const read = await through(1, () => client.store.get(NS, 'k429'));
      expect(read.result).toMatchObject({ key: 'k429' });
      expect(read.sent).toBe(2);
      // A put is not sent twice: the 429 comes back as a failure worth retrying later, not a permanent one.
      const write = await through(1, () => failure(client.store.put(NS, 'k429', { content: 'y' })));
      expect(write.result).toBeInstanceOf(UnavailableError);
      expect(write.result.message).toMatch(/answered 429: <html>Too Many Requests/);
      expect(write.sent).toBe(1);
    } finally {
      flaky.failure = defaults;
      flaky.failNext = 0;
    }
  });

  it('retries turns only when every message has an id, and never a put or delete', async () => {
    await client.store.put(NS, 'k2', { content: 'x' });
    flaky.failNext = 2;
    let before = flaky.requests;
    const sent = await client.enqueue({ threadId: 't2', context: { userId: 'u1' }, messages: [turn('a'), turn('b')] });
    expect(sent).toMatchObject({ accepted: 2 });
    expect(flaky.requests - before).toBe(3);

    for (const call of [
      () => client.enqueue({ threadId: 't2', context: { userId: 'u1' }, messages: [turn('c'), turn()] }),
      () => client.store.put(NS, 'k4', { content: 'x' }),
      () => client.store.delete(NS, 'k2'),
      () =>
        client.store.batch([
          { op: 'get', namespace: NS, key: 'k2' },
          { op: 'delete', namespace: NS, key: 'k2' },
        ]),
    ]) {
      flaky.failNext = 1;
      before = flaky.requests;
      expect(await failure(call())).toBeInstanceOf(UnavailableError);
      expect(flaky.requests - before).toBe(1);
    }
    expect(await client.store.get(NS, 'k2')).toMatchObject({ key: 'k2' });
  });

  it("answers the API's own 503 (Postgres down) as UnavailableError, and a write once", async () => {
    await postgres.stop();
    try {
      const before = flaky.requests;
      const write = await failure(client.store.put(NS, 'k5', { content: 'x' }));
      expect(write).toBeInstanceOf(UnavailableError);
      expect(write.message).toBe('the memory store (Postgres) is not reachable; retry later');
      expect(flaky.requests - before).toBe(1);
    } finally {
      await postgres.start(pgPort);
    }
  });

  it('gives up at its timeout, saying whether the call may have been applied; a signal cancels it', async () => {
    redis.stall();
    try {
      const slow = await failure(
        client.enqueue({ threadId: 't3', context: { userId: 'u1' }, messages: [turn()] }, { timeoutMs: 200 }),
      );
      expect(slow).toBeInstanceOf(UnavailableError);
      expect(slow.message).toMatch(
        /did not answer POST \/v1\/threads\/t3\/turns within 200 ms; it may have been applied/,
      );

      const controller = new AbortController();
      const cancelled = client.enqueue(
        { threadId: 't3', context: { userId: 'u1' }, messages: [turn('z')] },
        { signal: controller.signal },
      );
      controller.abort(new Error('the user left'));
      expect((await failure(cancelled)).message).toBe('the user left');
    } finally {
      redis.resume();
    }
    // A call's own timeout is checked as the client's is: past Node's timers, 3e9 ms fired at once.
    for (const timeoutMs of [3e9, -1, Number.NaN]) {
      const refused = await failure(client.recall({ context: { userId: 'u1' }, query: 'x' }, { timeoutMs }));
      expect(refused, String(timeoutMs)).toBeInstanceOf(InputError);
      expect(refused.message).toMatch(/invalid call options:[\s\S]*timeoutMs/);
    }
  });
});

describe('engram/client with API keys', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({
      roles: ['api'],
      env: { API_KEYS: HOSTILE_API_KEYS, ADMIN_PASSWORD: 'board-password' },
      runtime: { kinds: [tenantKind] },
    });
  });
  afterAll(async () => h?.stop());

  it('sends its key as a bearer token; no key or a foreign namespace is an AuthError', async () => {
    const acme = new EngramHttpClient({ url: h.url, apiKey: HOSTILE_KEYS.acme });
    expect(await acme.store.put(['acme', 'notes'], 'k', { content: 'x' })).toMatchObject({ version: 1 });

    const foreign = await failure(acme.store.get(['globex', 'notes'], 'k'));
    expect(foreign).toBeInstanceOf(AuthError);
    expect((foreign as AuthError).forbidden).toBe(true);
    expect(foreign.message).toMatch(/outside your tenant/);

    const anonymous = await failure(new EngramHttpClient({ url: h.url }).store.get(['acme', 'notes'], 'k'));
    expect(anonymous).toBeInstanceOf(AuthError);
    expect((anonymous as AuthError).forbidden).toBe(false);
    // As for every refusal (docs/http-client.md): the HTTP exchange is the cause.
    expect(anonymous.cause).toEqual(new Error('HTTP 401 from GET /v1/store/items'));
    expect(foreign.cause).toEqual(new Error('HTTP 403 from GET /v1/store/items'));
  });
});

/**
 * A model provider's rate limit behind the API: the service answers 503 with the wait the
 * provider asked for, and the client waits that long before its retry, or gives up at once when
 * the wait would pass its deadline, with the service's answer rather than a timeout.
 */
describe("engram/client and a model provider's rate limit", () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({ roles: ['api'], env: { LLM_MAX_RETRIES: '0' } });
  });
  afterAll(async () => h?.stop());

  it("passes on the provider's Retry-After, and the client waits it out", async () => {
    h.model.embeddingFailure = { status: 429, headers: { 'retry-after': '1' } };
    h.model.failEmbeddings = 1;
    const raw = await fetch(`${h.url}/v1/memories/search?namespace=memories&namespace=u1&query=tea`);
    expect(raw.status).toBe(503);
    expect(raw.headers.get('retry-after')).toBe('1');

    h.model.failEmbeddings = 1;
    const before = h.model.embeddingRequests;
    const client = new EngramHttpClient({ url: h.url, retry: { baseDelayMs: 5 } });
    const started = Date.now();
    expect(await client.search({ namespace: NS, query: 'tea' })).toEqual([]);
    // Its own backoff is 5 ms: only the server's Retry-After makes it wait a second.
    expect(Date.now() - started).toBeGreaterThanOrEqual(950);
    expect(h.model.embeddingRequests - before).toBe(2);
  });

  it('gives up at once with the 503 when the wait would pass its deadline', async () => {
    h.model.embeddingFailure = { status: 429, headers: { 'retry-after': '30' } };
    h.model.failEmbeddings = 5;
    const before = h.model.embeddingRequests;
    const client = new EngramHttpClient({ url: h.url, timeoutMs: 5_000, retry: { baseDelayMs: 5 } });
    const err = await failure(client.search({ namespace: NS, query: 'tea' }));
    expect(err).toBeInstanceOf(UnavailableError);
    expect(err.message).toMatch(/429/);
    expect(err.message).not.toMatch(/did not answer/);
    expect(h.model.embeddingRequests - before).toBe(1);
    h.model.failEmbeddings = 0;
  });
});
