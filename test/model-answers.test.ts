import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { PermanentError, RetryableError } from '../src/errors.js';
import type { ChatModel } from '../src/llm/chat-model.js';
import type { Embedder } from '../src/llm/embedder.js';
import { defaultKinds } from '../src/memory/kinds.js';
import { MemoryManager } from '../src/memory/manager.js';
import { fakeEmbedding } from './fake-model/embedding.js';
import { FakeModel, type ChatReply } from './fake-model/server.js';
import { TEST_DIMENSIONS } from './helpers/harness.js';
import { chatModelFor, embedderFor, silentLog } from './helpers/models.js';

/**
 * Answers of a 200 that are not of their shape, from the stand-in model over HTTP through the
 * real `openai` SDK: each fails as a RetryableError naming the model and its base URL, saying
 * what came (the provider's own message when there is one), never as a TypeError or as vectors
 * given to the wrong texts.
 */
const model = new FakeModel();
let at: string;
beforeAll(async () => {
  await model.start();
  at = model.url.replace(/[.]/g, '\\.');
});
afterAll(async () => model.stop());

const completion = (message: Record<string, unknown>) =>
  JSON.stringify({
    id: 'x',
    object: 'chat.completion',
    created: 0,
    model: 'fake-chat',
    choices: [{ index: 0, finish_reason: 'tool_calls', message: { role: 'assistant', content: null, ...message } }],
  });

describe('chat answers', () => {
  let chat: ChatModel;
  beforeAll(() => {
    chat = chatModelFor(model);
  });
  const ask = () => chat.complete({ messages: [{ role: 'user', content: 'hi' }] });
  const answer = (reply: ChatReply) => {
    model.chat = () => reply;
  };

  it('passes calls it cannot read to the manager, which names them to the model instead of a TypeError', async () => {
    const calls = [
      { id: 'c1', type: 'function' },
      { id: 'c2', type: 'function', function: { name: 'insert_memory', arguments: { content: 1 } } },
    ];
    answer({ rawBody: completion({ tool_calls: calls }) });
    expect((await ask()).message.tool_calls).toEqual(calls);

    // Through the manager, as a reflection asks: repair rounds name both, then it gives up.
    const extracted = new MemoryManager(chat, silentLog).extract({
      kinds: defaultKinds,
      existing: [],
      turns: [{ role: 'user', content: 'hi' }],
    });
    await expect(extracted).rejects.toThrow(/tool call c1 names no function/);
    await expect(extracted).rejects.toThrow(/tool call c2 \(insert_memory\): its arguments are not a JSON string/);
    await expect(extracted).rejects.not.toThrow(TypeError);
  });

  it('passes calls of another type, and function calls that leave out their type, as they came', async () => {
    const calls = [
      { id: 'c1', type: 'custom', custom: { name: 'x', input: 'y' } },
      { id: 'c2', function: { name: 'insert_memory', arguments: '{"content":"User has a cat"}' } },
    ];
    answer({ rawBody: completion({ tool_calls: calls }) });
    expect((await ask()).message.tool_calls).toEqual(calls);
  });

  it("quotes the provider's message from a 200 whose body is an error", async () => {
    answer({
      rawBody: JSON.stringify({
        error: { message: 'The server had an error: upstream model crashed', type: 'server_error' },
      }),
    });
    const failure = ask();
    await expect(failure).rejects.toThrow(RetryableError);
    await expect(failure).rejects.toThrow(
      new RegExp(
        `^chat model fake-chat at ${at}: answered 200 with an error instead of a chat completion: ` +
          '"The server had an error: upstream model crashed"$',
      ),
    );
  });

  it("bounds the provider's message it quotes", async () => {
    answer({ rawBody: JSON.stringify({ error: { message: 'x'.repeat(100_000) } }) });
    const err = (await ask().catch((e: Error) => e)) as Error;
    expect(err).toBeInstanceOf(RetryableError);
    expect(err.message).toMatch(/x\.\.\. \(100000 characters\)"$/);
    expect(err.message.length).toBeLessThan(500);
  });

  it('says an event stream came, from a server that ignores `stream: false`', async () => {
    answer({
      rawBody: 'data: {"id":"x","object":"chat.completion.chunk","choices":[]}\n\ndata: [DONE]\n\n',
      contentType: 'text/event-stream',
    });
    const failure = ask();
    await expect(failure).rejects.toThrow(RetryableError);
    await expect(failure).rejects.toThrow(
      new RegExp(
        `^chat model fake-chat at ${at}: answered 200 with a text/event-stream body that is not JSON: "data: `,
      ),
    );
  });

  it('refuses an answer without a choice', async () => {
    answer({ rawBody: JSON.stringify({ id: 'x', object: 'chat.completion', choices: [] }) });
    await expect(ask()).rejects.toThrow(
      new RegExp(
        `^chat model fake-chat at ${at}: answered 200 with a body that is not a chat completion: choices: no choice$`,
      ),
    );
  });
});

describe('embedding answers', () => {
  let embedder: Embedder;
  beforeAll(() => {
    embedder = embedderFor(model);
  });
  const [alpha, beta] = [fakeEmbedding('alpha', TEST_DIMENSIONS), fakeEmbedding('beta', TEST_DIMENSIONS)];
  beforeEach(() => {
    model.embeddingAnswer = null;
  });
  afterAll(() => {
    model.embeddingAnswer = null;
  });
  const embedFails = async (error: new (...args: never[]) => Error, message: RegExp) => {
    const failure = embedder.embed(['alpha', 'beta']);
    await expect(failure).rejects.toThrow(error);
    await expect(failure).rejects.toThrow(message);
  };
  const where = () => `^embedding model fake-embedding at ${at}: `;

  it('gives each text its own vector, whatever the order of the answer', async () => {
    model.embeddingAnswer = (a) => ({ ...a, data: [...a.data].reverse() });
    expect(await embedder.embed(['alpha', 'beta'])).toEqual([alpha, beta]);
  });

  it('refuses indices that are not each of 0 to n-1 once, which gave texts each other vectors', async () => {
    model.embeddingAnswer = (a) => ({
      ...a,
      data: [
        { ...a.data[1]!, index: 0 },
        { ...a.data[0]!, index: 0 },
      ],
    });
    await embedFails(
      RetryableError,
      new RegExp(`${where()}returned the indices 0, 0 for 2 texts, not each of 0 to 1 once$`),
    );
    model.embeddingAnswer = (a) => ({ ...a, data: a.data.map((d, i) => ({ ...d, index: 7 + 2 * i })) });
    await embedFails(RetryableError, /returned the indices 7, 9 for 2 texts/);
  });

  it.each([
    ['null', null, /element 0: Invalid input: expected number, received null$/],
    ['a string', 'x', /element 0: Invalid input: expected number, received string$/],
    // Stored as pgvector's 4-byte floats, 1e300 was infinity and failed the commit.
    ['1e300', 1e300, /element 0: is out of the range of a 4-byte float$/],
  ])('refuses a vector holding %s', async (_label, value, message) => {
    model.embeddingAnswer = (a) => ({
      ...a,
      data: a.data.map((d) => ({ ...d, embedding: d.index === 1 ? [value, ...d.embedding.slice(1)] : d.embedding })),
    });
    await embedFails(RetryableError, new RegExp(`${where()}returned a vector \\(index 1\\) whose element 0: `));
    await embedFails(RetryableError, message);
  });

  it('refuses an element JSON reads as Infinity (1e999)', async () => {
    model.embeddingAnswer = (a) => JSON.stringify(a).replace(/"embedding":\[[-0-9.e]+/g, '"embedding":[1e999');
    await embedFails(RetryableError, /whose element 0: Invalid input: expected number, received Infinity$/);
  });

  it("quotes the provider's message from a 200 whose body is an error, naming the model and where", async () => {
    model.embeddingAnswer = () => ({ error: { message: 'quota exceeded', type: 'insufficient_quota' } });
    await embedFails(
      RetryableError,
      new RegExp(`${where()}answered 200 with an error instead of an embeddings list: "quota exceeded"$`),
    );
  });

  it('keeps a wrong count retryable and a wrong size permanent, naming where', async () => {
    model.embeddingAnswer = (a) => ({ ...a, data: a.data.slice(0, 1) });
    await embedFails(RetryableError, new RegExp(`${where()}returned 1 vectors for 2 texts$`));
    model.embeddingAnswer = (a) => ({ ...a, data: a.data.map((d) => ({ ...d, embedding: d.embedding.slice(1) })) });
    await embedFails(
      PermanentError,
      new RegExp(`${where()}returned ${TEST_DIMENSIONS - 1} dimensions, EMBEDDING_DIMENSIONS is ${TEST_DIMENSIONS}$`),
    );
  });
});
