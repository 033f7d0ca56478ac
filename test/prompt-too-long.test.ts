import { afterEach, describe, expect, it } from 'vitest';
import { ModelOutputError } from '../src/errors.js';
import { reflectThread } from '../src/memory/reflect.js';
import { readPrompt, type ChatHandler } from './fake-model/server.js';
import { reflectionCounts, reflectionJobs, startHarness, waitFor, type Harness } from './helpers/harness.js';
import { memoryValues, storeState } from './helpers/store-state.js';

/** Remembers the label (the text before the first colon) of every new user turn. */
const rememberLabels: ChatHandler = (request) => ({
  toolCalls: readPrompt(request)
    .turns.filter((t) => t.role === 'user')
    .map((t) => ({ name: 'insert_memory', arguments: { content: `User said ${t.content.split(':')[0]}` } })),
});
/** A turn of `chars` characters, labelled. */
const long = (label: string, chars: number) => `${label}: ${'la '.repeat(chars)}`.slice(0, chars);

/**
 * The chat model refuses prompts longer than its context, with OpenAI's 400
 * `context_length_exceeded`. A thread whose pending turns no prompt can hold must still be
 * reflected, turn by turn if need be, instead of parked for good with every later turn behind it.
 */
describe('a prompt longer than the chat model takes', () => {
  let h: Harness | undefined;
  afterEach(async () => {
    await h?.stop();
    h = undefined;
  });

  const say = (threadId: string, ...contents: string[]) =>
    h!.runtime.producer.enqueue({
      threadId,
      context: { userId: threadId },
      messages: contents.map((content) => ({ role: 'user' as const, content })),
    });
  const reflect = (threadId: string) =>
    reflectThread(h!.runtime.reflectDeps(), threadId, { actor: `test:${threadId}` });
  const pendingAfterCursor = async (threadId: string) =>
    (await h!.runtime.buffer.read(threadId, await h!.runtime.store.cursor(threadId), 100, 0)).pending.length;

  it('reflects a backlog longer than the context in smaller batches, through the worker, each turn once', async () => {
    h = await startHarness({
      roles: ['reflection'],
      chat: rememberLabels,
      env: { DEBOUNCE_MS: '100', MAX_WAIT_MS: '60000' },
    });
    h.model.chatMaxPromptChars = 40_000;
    // 160,000 characters pending, then one more turn: the reproduction of the parked thread.
    await say('backlog', ...Array.from({ length: 40 }, (_, i) => long(`turn ${i + 1}`, 4_000)));
    await say('backlog', long('turn 41', 4_000));

    const expected = Array.from({ length: 41 }, (_, i) => `User said turn ${i + 1}`).sort();
    const contents = async () =>
      (await memoryValues(h!.runtime, ['memories', 'backlog'])).map((m) => m.value.content as string).sort();
    const drained = async () => {
      const c = await reflectionCounts(h!.runtime, 'delayed', 'waiting', 'active');
      return (c.delayed ?? 0) + (c.waiting ?? 0) + (c.active ?? 0) === 0;
    };
    await waitFor(async () => (await contents()).length === 41 && (await drained()), { timeoutMs: 60_000 });

    expect(await contents()).toEqual(expected); // each turn once
    expect(await pendingAfterCursor('backlog')).toBe(0); // the cursor is at the last turn
    expect(await reflectionJobs(h.runtime, ['failed'])).toEqual([]);
    expect((await h.runtime.buffer.parked(10)).count).toBe(0);
    const answered = h.model.chatRequests.filter((r) => JSON.stringify(r.messages).length <= 40_000);
    expect(h.model.chatRequests.length).toBeGreaterThan(answered.length); // some were refused
    const shown = answered.flatMap((r) => readPrompt(r).turns.map((t) => t.content.split(':')[0]));
    expect(shown.sort()).toEqual(expected.map((c) => c.replace('User said ', '')));

    const metrics = await h.runtime.metrics.registry.getSingleMetricAsString(
      'engram_reflection_prompts_narrowed_total',
    );
    expect(metrics).toMatch(/\{how="fewer-turns"\} [1-9]/);
  }, 90_000);

  it('keeps its narrower prompt for the rest of what one reflection takes, instead of being refused again', async () => {
    h = await startHarness({ roles: [], chat: rememberLabels, runtime: { reflect: { maxTurns: 24 } } });
    h.model.chatMaxPromptChars = 40_000;
    await say('kept', ...Array.from({ length: 30 }, (_, i) => long(`turn ${i + 1}`, 4_000)));
    const refused = () => h!.model.chatRequests.filter((r) => JSON.stringify(r.messages).length > 40_000).length;

    // 24 and 12 turns refused; 6 fit, but the next 6 with the first shown as earlier context do
    // not, and 3 at a time carry the rest: 6 + 6 x 3 turns in 7 answers, 3 refusals in all.
    // Before, each batch's follow-up job asked 24 turns again and was refused down anew.
    const first = await reflect('kept');
    expect(first).toMatchObject({ status: 'applied', turns: 24, backlog: true, narrowed: { 'fewer-turns': 3 } });
    expect(refused()).toBe(3);
    expect(h.model.chatRequests).toHaveLength(3 + 7);
    expect(await pendingAfterCursor('kept')).toBe(6);

    // What is left past maxTurns is the follow-up's, which starts from the settings' scope.
    const second = await reflect('kept');
    expect(second).toMatchObject({ status: 'applied', turns: 6, backlog: false });
    expect(await pendingAfterCursor('kept')).toBe(0);
    const contents = (await memoryValues(h.runtime, ['memories', 'kept'])).map((m) => m.value.content as string);
    expect(contents.sort()).toEqual(Array.from({ length: 30 }, (_, i) => `User said turn ${i + 1}`).sort());
  });

  it('cuts a turn that alone is too long, says so in the prompt, and reflects it', async () => {
    h = await startHarness({ roles: [], chat: rememberLabels });
    await say('one', 'short: I live in Lyon');
    await reflect('one');
    h.model.chatMaxPromptChars = 12_000;
    h.model.chatRequests.length = 0;
    const text = long('huge', 30_000);
    await say('one', text);

    const outcome = await reflect('one');

    expect(outcome).toMatchObject({
      status: 'applied',
      turns: 1,
      inserted: 1,
      modelCalls: 4,
      narrowed: { 'fewer-turns': 0, 'no-earlier': 1, 'cut-turn': 2 },
    });
    expect(h.model.chatRequests).toHaveLength(4);
    const shown = readPrompt(h.model.chatRequests[3]!);
    expect(shown.earlier).toEqual([]);
    expect(shown.turns).toHaveLength(1);
    const [turn] = shown.turns;
    expect(turn!.content).toMatch(/ \[cut for length: the last 22500 of 30000 characters are not shown\]$/);
    expect(text.startsWith(turn!.content.slice(0, 7_500))).toBe(true);
    expect((await memoryValues(h.runtime, ['memories', 'one'])).map((m) => m.value.content)).toEqual([
      'User said huge',
      'User said short',
    ]);
    expect(await pendingAfterCursor('one')).toBe(0);
    // Only the prompt was cut: the buffer keeps the turn whole, as context for the next one.
    const kept = await h.runtime.buffer.read('one', null, 10, 0);
    expect(kept.pending.at(-1)?.turn.content).toBe(text);
  });

  it('fails as before, changing nothing, when no narrower prompt is left to try', async () => {
    h = await startHarness({ roles: [], chat: rememberLabels });
    h.model.chatMaxPromptChars = 100; // less than the instructions alone
    await say('hopeless', ...Array.from({ length: 40 }, (_, i) => long(`turn ${i + 1}`, 4_000)));
    const before = await storeState(h.runtime);

    const failure = reflect('hopeless');

    await expect(failure).rejects.toThrow(ModelOutputError);
    await expect(failure).rejects.toThrow(/refused: 400 This model's maximum context length/);
    // 40 turns halved to 1 (5 refusals), then the one turn cut from 4,000 to 500 characters (3).
    expect(h.model.chatRequests).toHaveLength(9);
    expect(await storeState(h.runtime)).toEqual(before);
    expect(await pendingAfterCursor('hopeless')).toBe(40);
  });
});
