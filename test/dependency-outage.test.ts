import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeModel, type ChatHandler, type ChatRequest } from './fake-model/server.js';
import { reflectionCounts, startHarness, TEST_DATABASE_URL, waitFor, type Harness } from './helpers/harness.js';
import { StallProxy } from './helpers/stall-proxy.js';
import { memoryValues } from './helpers/store-state.js';

/**
 * A dependency away for longer than a reflection's attempts last: the threads due meanwhile used
 * to spend every attempt in a second and park, reflected again only by an operator's retry or
 * the user's next turn. Now the worker hands each job back without spending an attempt, takes no
 * reflection while the dependency is away, and reflects them once it answers.
 */
const remembers = () => ({ toolCalls: [{ name: 'insert_memory', arguments: { content: 'User likes tea' } }] });
/** Two attempts 20 ms apart: without the hold, both are spent within the outages below. */
const QUICK_ATTEMPTS = {
  DEBOUNCE_MS: '50',
  REFLECTION_ATTEMPTS: '2',
  REFLECTION_BACKOFF_MS: '20',
  LLM_MAX_RETRIES: '0',
};
const users = ['u1', 'u2', 'u3'];

async function enqueueAll(h: Harness) {
  for (const user of users)
    await h.runtime.producer.enqueue({
      threadId: `t-${user}`,
      context: { userId: user },
      messages: [{ role: 'user', content: 'I like tea' }],
    });
}

/** engram_reflections_total{status="handed-back"}, as /metrics shows it. */
async function handedBack(h: Harness): Promise<number> {
  const text = await h.runtime.metrics.registry.metrics();
  return Number(/^engram_reflections_total\{status="handed-back"\} (\d+)$/m.exec(text)?.[1] ?? 0);
}

/** engram_reflections_held for one dependency and reason, as /metrics shows it (absent: 0). */
async function held(h: Harness, dependency: string, reason: string): Promise<number> {
  const text = await h.runtime.metrics.registry.metrics();
  const line = new RegExp(`^engram_reflections_held\\{dependency="${dependency}",reason="${reason}"\\} (\\d+)$`, 'm');
  return Number(line.exec(text)?.[1] ?? 0);
}

/**
 * The jobs that ran against the outage were handed back; none failed, no thread parked. Jobs not
 * yet taken when the hold began wait for it to end: under load only the first may have run.
 */
async function heldThrough(h: Harness) {
  await waitFor(async () => (await handedBack(h)) >= 1);
  await new Promise((r) => setTimeout(r, 1_000));
  expect(await reflectionCounts(h.runtime, 'failed')).toEqual({ failed: 0 });
  expect((await h.runtime.buffer.parked(10)).count).toBe(0);
}

/** Each thread reflected once the dependency is back, with nothing failed or parked. */
async function reflectedAfter(h: Harness) {
  for (const user of users)
    await waitFor(async () => (await memoryValues(h.runtime, ['memories', user])).length === 1, { timeoutMs: 20_000 });
  expect(await reflectionCounts(h.runtime, 'failed')).toEqual({ failed: 0 });
  expect((await h.runtime.buffer.parked(10)).count).toBe(0);
}

describe('a Postgres outage longer than the attempts', () => {
  const proxy = new StallProxy(new URL(TEST_DATABASE_URL));
  let port: number;
  let h: Harness;
  beforeAll(async () => {
    const url = await proxy.start();
    port = Number(new URL(url).port);
    h = await startHarness({
      roles: ['reflection'],
      env: { DATABASE_URL: url, ...QUICK_ATTEMPTS },
      runtime: { outagePollMs: 100 },
      chat: remembers,
    });
  });
  afterAll(async () => {
    if (!proxy.listening) await proxy.start(port);
    await h?.stop();
    await proxy.stop();
  });

  it('hands the jobs back without spending attempts, and reflects them once Postgres answers', async () => {
    await proxy.stop();
    await enqueueAll(h);
    await heldThrough(h);
    expect(h.model.chatRequests).toHaveLength(0);
    expect(await held(h, 'postgres', 'unreachable')).toBe(1);
    await proxy.start(port);
    await reflectedAfter(h);
    expect(await held(h, 'postgres', 'unreachable')).toBe(0);
    // The model was asked once per thread: the reads before it failed, not the commit.
    expect(h.model.chatRequests).toHaveLength(users.length);
  });
});

describe('a chat model away for longer than the attempts', () => {
  // The chat model behind a proxy that can refuse; embeddings from a model of their own.
  const chat = new FakeModel(remembers);
  const embeddings = new FakeModel();
  let proxy: StallProxy;
  let port: number;
  let h: Harness;
  beforeAll(async () => {
    await Promise.all([chat.start(), embeddings.start()]);
    proxy = new StallProxy(new URL(chat.url));
    const url = await proxy.start();
    port = Number(new URL(url).port);
    h = await startHarness({
      roles: ['reflection'],
      env: { OPENAI_BASE_URL: url, EMBEDDING_BASE_URL: embeddings.url, ...QUICK_ATTEMPTS },
      runtime: { outagePollMs: 100 },
    });
  });
  afterAll(async () => {
    if (proxy && !proxy.listening) await proxy.start(port);
    await h?.stop();
    await proxy?.stop();
    await Promise.all([chat.stop(), embeddings.stop()]);
  });

  it('hands the jobs back while its /models does not answer either, and reflects them once it does', async () => {
    await proxy.stop();
    await enqueueAll(h);
    await heldThrough(h);
    await proxy.start(port);
    await reflectedAfter(h);
    expect(chat.chatRequests).toHaveLength(users.length);
  });
});

/** The rate-limit probe's request (llm/clients.ts): one word, one token. */
const isProbe = (request: ChatRequest) => request.max_completion_tokens === 1;
const rateLimited = { status: 429, error: 'Rate limit reached for requests', code: 'rate_limit_exceeded' };

/** A reflection process whose chat model answers with `chat`, stopped after the file's tests. */
function reflectingWith(chat: ChatHandler): () => Harness {
  let h: Harness | undefined;
  beforeAll(async () => {
    h = await startHarness({ roles: ['reflection'], env: QUICK_ATTEMPTS, runtime: { outagePollMs: 100 }, chat });
  });
  afterAll(async () => {
    await h?.stop();
  });
  return () => h as Harness;
}

describe('a chat model refusing every request for its rate limit, longer than the attempts', () => {
  let limited = true;
  const harness = reflectingWith(() => (limited ? rateLimited : remembers()));

  it('hands the jobs back while a one-word request is refused too, and reflects them once it is not', async () => {
    const h = harness();
    await enqueueAll(h);
    await heldThrough(h);
    // The hold asked the provider with its smallest request, not with the reflections'.
    expect(h.model.chatRequests.filter(isProbe).length).toBeGreaterThan(0);
    expect(await held(h, 'chat-model', 'rate-limited')).toBe(1);
    limited = false;
    await reflectedAfter(h);
    expect(await held(h, 'chat-model', 'rate-limited')).toBe(0);
  });
});

describe('a chat model refusing only one request for its rate limit (too large for it)', () => {
  const harness = reflectingWith((request) =>
    JSON.stringify(request.messages).includes('War and Peace') ? rateLimited : remembers(),
  );

  it('spends the job attempts and parks its thread, as a request that would be refused for ever', async () => {
    const h = harness();
    await h.runtime.producer.enqueue({
      threadId: 't-big',
      context: { userId: 'big' },
      messages: [{ role: 'user', content: 'Here is all of War and Peace' }],
    });
    await waitFor(async () => (await h.runtime.buffer.parked(10)).count === 1);
    expect(await reflectionCounts(h.runtime, 'failed')).toEqual({ failed: 1 });
    expect(await handedBack(h)).toBe(0);
    // Each attempt's refusal was checked with the one-word request, which the provider took.
    expect(h.model.chatRequests.filter(isProbe)).toHaveLength(2);
    // Meanwhile another user's thread reflects as usual: the process was never held.
    await h.runtime.producer.enqueue({
      threadId: 't-small',
      context: { userId: 'small' },
      messages: [{ role: 'user', content: 'I like tea' }],
    });
    await waitFor(async () => (await memoryValues(h.runtime, ['memories', 'small'])).length === 1);
  });
});

describe('an embedding model refusing every request for its rate limit', () => {
  const harness = reflectingWith(remembers);

  it('holds the reflections while the embedding of one word is refused too, then reflects them', async () => {
    const h = harness();
    h.model.embeddingFailure = { status: 429, headers: { 'retry-after-ms': '10' } };
    h.model.failEmbeddings = 1_000_000;
    await enqueueAll(h);
    await heldThrough(h);
    expect(await held(h, 'embedding-model', 'rate-limited')).toBe(1);
    expect(h.model.chatRequests).toHaveLength(0);
    h.model.failEmbeddings = 0;
    await reflectedAfter(h);
    expect(await held(h, 'embedding-model', 'rate-limited')).toBe(0);
  });
});
