import { afterEach, describe, expect, it } from 'vitest';
import { readPrompt, type ChatHandler } from './fake-model/server.js';
import { reflectionCounts, reflectionJobs, startHarness, waitFor, type Harness } from './helpers/harness.js';

/** Remembers every user turn verbatim, so the store shows which turns each reflection saw. */
const recordAll: ChatHandler = (request) => ({
  toolCalls: readPrompt(request)
    .turns.filter((t) => t.role === 'user')
    .map((t) => ({ name: 'insert_memory', arguments: { content: t.content } })),
});
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * A reflection that fails slower than maxWait: its thread passes its ceiling while an attempt
 * runs, and the ceiling sweeper (every 200 ms in the harness) meets the active job.
 */
describe('a failing reflection slower than maxWait', () => {
  let h: Harness | undefined;
  afterEach(async () => {
    await h?.stop();
    h = undefined;
  });

  it('runs its attempts once and parks its thread; a new turn unparks it', async () => {
    let healthy = false;
    h = await startHarness({
      roles: ['reflection'],
      // A model that answers after the request's timeout: each attempt fails after 400 ms.
      chat: (req, n) => (healthy ? recordAll(req, n) : { content: 'too late', delayMs: 1_500 }),
      env: {
        DEBOUNCE_MS: '100',
        MAX_WAIT_MS: '300',
        LLM_TIMEOUT_MS: '400',
        LLM_MAX_RETRIES: '0',
        REFLECTION_ATTEMPTS: '2',
        REFLECTION_BACKOFF_MS: '100',
      },
    });
    const send = (content: string) =>
      h!.runtime.producer.enqueue({
        threadId: 'slow',
        context: { userId: 'u1' },
        messages: [{ role: 'user', content }],
      });
    await send('I keep bees');
    await waitFor(async () => (await h!.runtime.buffer.parked(10)).count === 1);
    // A follow-up created when the job failed would have run its two attempts by now.
    await sleep(1_500);
    expect(await reflectionCounts(h.runtime, 'waiting', 'delayed', 'active', 'completed', 'failed')).toEqual({
      waiting: 0,
      delayed: 0,
      active: 0,
      completed: 0,
      failed: 1,
    });
    expect(h.model.chatRequests).toHaveLength(2);
    expect(await h.runtime.buffer.pendingThreads()).toBe(0);

    // The documented way out: the thread's next turn reflects every pending turn and unparks it.
    healthy = true;
    await send('and wasps');
    await waitFor(async () => (await h!.runtime.store.cursor('slow')) !== null);
    expect(readPrompt(h.model.chatRequests.at(-1)!).turns.map((t) => t.content)).toEqual(['I keep bees', 'and wasps']);
    expect((await h.runtime.buffer.parked(10)).count).toBe(0);
    expect(await reflectionJobs(h.runtime, ['failed'])).toHaveLength(1);
  });

  it('fails its attempts as timed out when the model stalls after its headers, and parks its thread', async () => {
    h = await startHarness({
      roles: ['reflection'],
      // Headers in time, then a space every 100 ms and never the rest: only a bound on the whole
      // attempt ends it (the job stayed active, with no log, failure or retry).
      chat: () => ({ stalledBody: '{' }),
      env: {
        DEBOUNCE_MS: '100',
        MAX_WAIT_MS: '300',
        LLM_TIMEOUT_MS: '300',
        LLM_MAX_RETRIES: '0',
        REFLECTION_ATTEMPTS: '2',
        REFLECTION_BACKOFF_MS: '100',
      },
    });
    await h.runtime.producer.enqueue({
      threadId: 'stalled',
      context: { userId: 'u1' },
      messages: [{ role: 'user', content: 'I keep bees' }],
    });
    await waitFor(async () => (await h!.runtime.buffer.parked(10)).count === 1, { timeoutMs: 10_000 });
    expect(await reflectionCounts(h.runtime, 'active', 'failed')).toEqual({ active: 0, failed: 1 });
    const [job] = await reflectionJobs(h.runtime, ['failed']);
    expect(job?.failedReason).toMatch(/chat model .* failed after 1 attempt\(s\): Request timed out/);
    expect(job?.attemptsMade).toBe(2);
    expect(h.model.chatRequests).toHaveLength(2);
  });
});
