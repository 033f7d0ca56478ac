import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { PermanentError, RetryableError } from '../src/errors.js';
import { reflectThread } from '../src/memory/reflect.js';
import { readPrompt, type ChatHandler, type ChatReply } from './fake-model/server.js';
import { startHarness, waitFor, type Harness } from './helpers/harness.js';
import { memoryValues, storeState } from './helpers/store-state.js';

/**
 * The model misbehaves. Every case ends in a repaired success or a clean failure: the store is
 * exactly as before (memories, history, versions, cursor) and the turns stay buffered, so the
 * job's next attempt reflects them once.
 */
describe('formation when the model misbehaves', () => {
  let h: Harness;
  const ns = (user: string) => ['memories', user];
  beforeAll(async () => {
    // Retries on, with short steps: 3 attempts, 5 ms backoff, Retry-After honoured up to 200 ms.
    h = await startHarness({ roles: [], env: { LLM_MAX_RETRIES: '2', LLM_RETRY_BASE_MS: '5', LLM_TIMEOUT_MS: '400' } });
  });
  afterAll(async () => h?.stop());
  beforeEach(() => {
    h.model.chatRequests.length = 0;
  });

  const reflect = (threadId: string, signal?: AbortSignal) =>
    reflectThread(h.runtime.reflectDeps(), threadId, { actor: `test:${threadId}`, signal });
  const say = (threadId: string, user: string, content: string) =>
    h.runtime.producer.enqueue({ threadId, context: { userId: user }, messages: [{ role: 'user', content }] });
  /** The model's answers in order (the last repeats); `chatRequests` restarts from here. */
  const script = (...replies: ChatReply[]) => {
    h.model.chatRequests.length = 0;
    h.model.chat = (_req, i) => replies[Math.min(i, replies.length - 1)] as ChatReply;
  };
  const remembers = (content: string) => ({ toolCalls: [{ name: 'insert_memory', arguments: { content } }] });
  /** An answer whose tool calls are exactly `toolCalls`, whatever their shape. */
  const rawAnswer = (toolCalls: unknown[]): ChatReply => ({
    rawBody: JSON.stringify({
      id: 'raw',
      object: 'chat.completion',
      created: 0,
      model: 'fake-chat',
      choices: [
        { index: 0, finish_reason: 'tool_calls', message: { role: 'assistant', content: null, tool_calls: toolCalls } },
      ],
      usage: { prompt_tokens: 10, completion_tokens: 10, total_tokens: 20 },
    }),
  });

  /** A user with one memory, "User loves ramen" (alias m1 in the next prompt). */
  async function userWithRamen(user: string) {
    script(remembers('User loves ramen'));
    await say(`${user}-seed`, user, 'I love ramen');
    await reflect(`${user}-seed`);
  }

  /** Runs a reflection expected to fail, and checks it changed nothing and left the turns pending. */
  async function failsCleanly(threadId: string, error: new (...args: never[]) => Error, message: RegExp) {
    const before = await storeState(h.runtime);
    const failure = reflect(threadId);
    await expect(failure).rejects.toThrow(error);
    await expect(failure).rejects.toThrow(message);
    expect(await storeState(h.runtime)).toEqual(before);
    const pending = await h.runtime.buffer.read(threadId, await h.runtime.store.cursor(threadId), 10, 0);
    expect(pending.pending.length).toBeGreaterThan(0);
  }

  it('repairs an invented alias', async () => {
    await userWithRamen('alias');
    script(
      { toolCalls: [{ name: 'delete_memory', arguments: { id: 'm9' } }] },
      { toolCalls: [{ name: 'delete_memory', arguments: { id: 'm1' } }] },
    );
    await say('alias-1', 'alias', 'I am off ramen for good');
    expect(await reflect('alias-1')).toMatchObject({ status: 'applied', deleted: 1, modelCalls: 2 });
    expect(await memoryValues(h.runtime, ns('alias'))).toEqual([]);
  });

  it('repairs malformed JSON', async () => {
    script(
      { toolCalls: [{ name: 'insert_memory', arguments: '{"content": "User has a ca' }] },
      remembers('User has a cat'),
    );
    await say('json-1', 'json', 'I have a cat');
    expect(await reflect('json-1')).toMatchObject({ status: 'applied', inserted: 1, modelCalls: 2 });
    expect((await memoryValues(h.runtime, ns('json'))).map((m) => m.value.content)).toEqual(['User has a cat']);
  });

  it('repairs a document holding a NUL character, which Postgres cannot store', async () => {
    script(remembers('User has a cat\u0000'), remembers('User has a cat'));
    await say('nul-1', 'nul', 'I have a cat');
    expect(await reflect('nul-1')).toMatchObject({ status: 'applied', inserted: 1, modelCalls: 2 });
    expect(h.model.chatRequests[1]?.messages.find((m) => m.role === 'tool')?.content).toMatch(
      /must not contain NUL characters/,
    );
    expect((await memoryValues(h.runtime, ns('nul'))).map((m) => m.value.content)).toEqual(['User has a cat']);
  });

  it('repairs a document holding a lone surrogate, which is no Unicode text and which jsonb refuses', async () => {
    script(remembers('User likes caf\ud800'), remembers('User likes cafes'));
    await say('surrogate-1', 'surrogate', 'I like cafes');
    expect(await reflect('surrogate-1')).toMatchObject({ status: 'applied', inserted: 1, modelCalls: 2 });
    expect(h.model.chatRequests[1]?.messages.find((m) => m.role === 'tool')?.content).toMatch(
      /error: insert_memory: content must not contain a lone UTF-16 surrogate/,
    );
    expect((await memoryValues(h.runtime, ns('surrogate'))).map((m) => m.value.content)).toEqual(['User likes cafes']);
  });

  it('reads a tool call without "type" as a function call, and never drops one it cannot read', async () => {
    // Some OpenAI-compatible servers leave `type` out of their tool calls.
    script(rawAnswer([{ id: 'c1', function: { name: 'insert_memory', arguments: '{"content":"User has a cat"}' } }]));
    await say('untyped-1', 'untyped', 'I have a cat');
    expect(await reflect('untyped-1')).toMatchObject({ status: 'applied', inserted: 1, modelCalls: 1 });
    expect((await memoryValues(h.runtime, ns('untyped'))).map((m) => m.value.content)).toEqual(['User has a cat']);

    // A call of another type, or with no function: the model is told, in a repair round...
    const unreadable = rawAnswer([
      { id: 'c1', type: 'custom', custom: { name: 'insert_memory', input: 'User has a dog' } },
      { id: 'c2', type: 'function' },
    ]);
    script(unreadable, remembers('User has a dog'));
    await say('untyped-2', 'untyped', 'I have a dog');
    expect(await reflect('untyped-2')).toMatchObject({ status: 'applied', inserted: 1, modelCalls: 2 });
    expect(h.model.chatRequests[1]?.messages.at(-1)?.content).toMatch(
      /not understood: tool call c1 is of type "custom".*; tool call c2 names no function/,
    );
    // ...and the reflection fails, its turns kept, when it answers so every time.
    script(unreadable);
    await say('untyped-3', 'untyped', 'I have a parrot');
    await failsCleanly(
      'untyped-3',
      RetryableError,
      /still invalid after 2 repair round\(s\): tool call c1 is of type "custom"/,
    );
  });

  it('refuses an answer of more than 200 tool calls whole, and keeps the repair request small', async () => {
    const inserts = (n: number) => ({
      toolCalls: Array.from({ length: n }, (_, i) => ({
        name: 'insert_memory',
        arguments: { content: `User fact ${i}` },
      })),
    });
    script(inserts(201), inserts(2));
    await say('many-1', 'many', 'I have many facts');
    expect(await reflect('many-1')).toMatchObject({ status: 'applied', inserted: 2, modelCalls: 2 });
    const repair = h.model.chatRequests[1]!;
    expect(repair.messages.at(-1)?.content).toMatch(/made 201 tool calls; at most 200 are allowed in one answer/);
    expect(JSON.stringify(repair.messages.slice(-2)).length).toBeLessThan(1_000);

    script(inserts(3000));
    await say('many-2', 'many', 'I have even more facts');
    await failsCleanly(
      'many-2',
      RetryableError,
      /still invalid after 2 repair round\(s\): the answer made 3000 tool calls, more than the 200 allowed in one answer$/,
    );
    expect(h.model.chatRequests.map((r) => JSON.stringify(r).length).every((n) => n < 20_000)).toBe(true);
  });

  it('fails cleanly on a document that stays schema-invalid, and the retry applies it once', async () => {
    await userWithRamen('schema');
    script({
      toolCalls: [
        { name: 'insert_memory', arguments: { content: 'User has a dog' } },
        { name: 'update_memory', arguments: { id: 'm1', document: { text: 'no content field' } } },
      ],
    });
    await say('schema-1', 'schema', 'I have a dog, and I love ramen even more now');
    await failsCleanly(
      'schema-1',
      RetryableError,
      /still invalid after 2 repair round\(s\).*does not match the "memory" schema/,
    );
    expect(h.model.chatRequests).toHaveLength(3);

    // The job's next attempt, with a model that behaves: applied once.
    script({
      toolCalls: [
        { name: 'insert_memory', arguments: { content: 'User has a dog' } },
        { name: 'update_memory', arguments: { id: 'm1', document: { content: 'User loves ramen more and more' } } },
      ],
    });
    expect(await reflect('schema-1')).toMatchObject({ status: 'applied', inserted: 1, updated: 1 });
    expect(await reflect('schema-1')).toMatchObject({ status: 'nothing-pending', modelCalls: 0 });
    expect((await memoryValues(h.runtime, ns('schema'))).map((m) => m.value.content)).toEqual([
      'User has a dog',
      'User loves ramen more and more',
    ]);
  });

  it('waits out a 429 as the provider asks, then succeeds', async () => {
    script(
      { status: 429, error: 'rate limited', headers: { 'retry-after-ms': '20' } },
      remembers('User runs marathons'),
    );
    await say('rate-1', 'rate', 'I run marathons');
    expect(await reflect('rate-1')).toMatchObject({ status: 'applied', inserted: 1, modelCalls: 1 });
    expect(h.model.chatRequests).toHaveLength(2);
  });

  it('retries a 5xx, and fails cleanly when it persists', async () => {
    script({ status: 503, error: 'overloaded' });
    await say('down-1', 'down', 'I play chess');
    await failsCleanly('down-1', RetryableError, /chat model fake-chat|failed after 3 attempt\(s\)/);
    expect(h.model.chatRequests).toHaveLength(3);
  });

  it('does not wait longer than its cap when the provider asks for minutes', async () => {
    script({ status: 429, error: 'quota', headers: { 'retry-after': '600' } });
    await say('quota-1', 'quota', 'I play go');
    await failsCleanly('quota-1', RetryableError, /asks to wait 600000 ms, more than 200 ms/);
    expect(h.model.chatRequests).toHaveLength(1);
  });

  it('fails at once, as permanent, on a request the provider refuses', async () => {
    script({ status: 400, error: 'context length exceeded' });
    await say('refused-1', 'refused', 'I knit');
    await failsCleanly('refused-1', PermanentError, /refused: 400 context length exceeded/);
    expect(h.model.chatRequests).toHaveLength(1);
  });

  it.each([
    ['length', /stopped at its output limit \(finish_reason "length"\)/],
    ['content_filter', /withheld its answer \(finish_reason "content_filter"\)/],
  ])(
    'fails cleanly, as permanent, on an answer the model did not finish (%s), keeping the facts after the cut',
    async (finishReason, message) => {
      // The calls before the cut are valid: read as the whole answer, the turns would be marked
      // reflected with the rest of what they said dropped.
      script({ ...remembers('User has a boat'), finishReason });
      await say(`cut-${finishReason}`, `cut-${finishReason}`, 'I have a boat, two cats, and I live in Lyon');
      await failsCleanly(`cut-${finishReason}`, PermanentError, message);
      expect(h.model.chatRequests).toHaveLength(1);
    },
  );

  it('retries a timed-out request, and fails cleanly when every attempt times out', async () => {
    script({ ...remembers('User sails'), delayMs: 3_000 }, remembers('User sails'));
    await say('slow-1', 'slow', 'I sail');
    expect(await reflect('slow-1')).toMatchObject({ status: 'applied', inserted: 1 });
    expect(h.model.chatRequests).toHaveLength(2);

    script({ ...remembers('User rows'), delayMs: 3_000 });
    await say('slow-2', 'slow2', 'I row');
    await failsCleanly('slow-2', RetryableError, /failed after 3 attempt\(s\).*timed out/);
  });

  it('bounds each attempt, body included: a body that stalls after its headers times out and is retried', async () => {
    // Headers at once, then a space every 100 ms: the SDK's timeout stops at the headers, and
    // the reflection waited for good.
    script({ stalledBody: '{"id":"x",' }, remembers('User weaves'));
    await say('stall-1', 'stall', 'I weave');
    expect(await reflect('stall-1')).toMatchObject({ status: 'applied', inserted: 1 });
    expect(h.model.chatRequests).toHaveLength(2);

    script({ stalledBody: '{' });
    await say('stall-2', 'stall2', 'I spin');
    const started = Date.now();
    await failsCleanly('stall-2', RetryableError, /chat model .* failed after 3 attempt\(s\): Request timed out/);
    expect(h.model.chatRequests).toHaveLength(3);
    // 3 x LLM_TIMEOUT_MS (400) and two short backoffs.
    expect(Date.now() - started).toBeLessThan(3_000);
  }, 10_000);

  it('bounds each embedding attempt, body included, by the timeout', async () => {
    script(remembers('User dyes wool'));
    await say('stall-3', 'stall3', 'I dye wool');
    h.model.stallEmbeddingBodies = true;
    try {
      const started = Date.now();
      await failsCleanly(
        'stall-3',
        RetryableError,
        /embedding model .* failed after 3 attempt\(s\): Request timed out/,
      );
      expect(Date.now() - started).toBeLessThan(3_000);
    } finally {
      h.model.stallEmbeddingBodies = false;
    }
  }, 10_000);

  it('fails cleanly, naming the model and its base URL, on a 200 whose body is not JSON', async () => {
    const at = h.model.url.replace(/[.]/g, '\\.');
    script({ rawBody: '<<<this is not json' });
    await say('not-json-1', 'notjson', 'I knit');
    await failsCleanly(
      'not-json-1',
      RetryableError,
      new RegExp(`^chat model gpt-4o-mini at ${at}: answered 200 with a body that is not JSON: .*<<<this is not json`),
    );

    h.model.embeddingRawBody = '<html>a proxy page</html>';
    try {
      await failsCleanly(
        'not-json-1',
        RetryableError,
        new RegExp(
          `^embedding model ${h.env.EMBEDDING_MODEL} at ${at}: answered 200 with a body that is not JSON: .*<html>`,
        ),
      );
    } finally {
      h.model.embeddingRawBody = null;
    }
  });

  it('fails cleanly, before the commit, on vectors that cannot be trusted', async () => {
    const fromDocuments =
      (mutate: NonNullable<typeof h.model.embeddingAnswer>): typeof h.model.embeddingAnswer =>
      (answer, input) =>
        input.some((t) => t.includes('User plays chess')) ? mutate(answer, input) : answer;
    script({
      toolCalls: [
        { name: 'insert_memory', arguments: { content: 'User plays chess' } },
        { name: 'insert_memory', arguments: { content: 'User grows tomatoes' } },
      ],
    });
    await say('vectors-1', 'vectors', 'I play chess and grow tomatoes');
    try {
      // Every index 0: sorted, the texts got each other's vectors and were committed so.
      h.model.embeddingAnswer = fromDocuments((a) => ({ ...a, data: a.data.map((d) => ({ ...d, index: 0 })) }));
      await failsCleanly('vectors-1', RetryableError, /embedding model .* returned the indices 0, 0 for 2 texts/);
      // Past a 4-byte float: the commit failed with Postgres' "infinite value not allowed in vector".
      h.model.embeddingAnswer = fromDocuments((a) => ({
        ...a,
        data: a.data.map((d) => ({ ...d, embedding: [1e300, ...d.embedding.slice(1)] })),
      }));
      await failsCleanly('vectors-1', RetryableError, /whose element 0: is out of the range of a 4-byte float/);
    } finally {
      h.model.embeddingAnswer = null;
    }
    expect(await reflect('vectors-1')).toMatchObject({ status: 'applied', inserted: 2 });
  });

  it('writes nothing when embedding the changed documents fails after the model answered', async () => {
    script(remembers('User climbs'));
    await say('embed-1', 'embed', 'I climb');
    // The queries' embedding succeeds; the documents' batch (3 attempts) fails.
    const queriesFirst: ChatHandler = () => {
      h.model.failEmbeddings = 3;
      return remembers('User climbs');
    };
    h.model.chat = queriesFirst;
    await failsCleanly('embed-1', RetryableError, /embedding model .* failed after 3 attempt\(s\)/);
    expect(h.model.chatRequests).toHaveLength(1);
  });

  it('aborts the request in flight when the job is cancelled', async () => {
    script({ ...remembers('User paints'), delayMs: 2_000 });
    await say('abort-1', 'abort', 'I paint');
    const before = await storeState(h.runtime);
    const controller = new AbortController();
    const running = reflect('abort-1', controller.signal);
    await waitFor(() => h.model.chatRequests.length === 1);
    controller.abort(new Error('job cancelled'));
    await expect(running).rejects.toThrow('job cancelled');
    expect(await storeState(h.runtime)).toEqual(before);
    expect(h.model.chatRequests).toHaveLength(1);
  });

  it('aborts during the backoff wait, without sending the retry', async () => {
    script({ status: 429, error: 'rate limited', headers: { 'retry-after-ms': '150' } }, remembers('User sings'));
    await say('abort-2', 'abort2', 'I sing');
    const controller = new AbortController();
    const running = reflect('abort-2', controller.signal);
    await waitFor(() => h.model.chatRequests.length === 1);
    controller.abort(new Error('shutting down'));
    await expect(running).rejects.toThrow('shutting down');
    expect(h.model.chatRequests).toHaveLength(1);
    expect(await memoryValues(h.runtime, ns('abort2'))).toEqual([]);
  });

  it('shows the model what it got wrong in the repair round', async () => {
    await userWithRamen('shown');
    script(
      { toolCalls: [{ name: 'update_memory', arguments: { id: 'm1', document: { content: '' } } }] },
      { content: 'no changes' },
    );
    await say('shown-1', 'shown', 'ramen is fine');
    expect(await reflect('shown-1')).toMatchObject({ status: 'applied', updated: 0, modelCalls: 2 });
    const repair = h.model.chatRequests[1]!;
    expect(readPrompt(repair).existing.map((m) => m.id)).toEqual(['m1']);
    expect(repair.messages.find((m) => m.role === 'tool')?.content).toMatch(
      /error: update_memory: document does not match the "memory" schema.*content/s,
    );
  });
});
