import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { InputError, PermanentError, RetryableError } from '../src/errors.js';
import type { ChatReply, ChatRequest } from './fake-model/server.js';
import { startHarness, type Harness } from './helpers/harness.js';
import { storeState } from './helpers/store-state.js';

/** Procedural memory: a prompt improved from feedback, stored as a versioned memory with history. */
describe('prompt optimizer', () => {
  let h: Harness;
  const ns = ['prompts', 'support-agent'];
  const v1 = 'You are a support agent for {product}. Answer the question of {user_name}.';
  const v2 =
    'You are a support agent for {product}. Answer the question of {user_name}. Always end with a link to the docs.';
  const sessions = [
    {
      messages: [
        { role: 'user' as const, content: 'How do I reset my password?' },
        { role: 'assistant' as const, content: 'Click "forgot password".' },
      ],
      feedback: { score: 2, comment: 'Useful, but always link the docs page' },
    },
  ];
  beforeAll(async () => {
    h = await startHarness({ roles: [] });
  });
  afterAll(async () => h?.stop());
  beforeEach(() => {
    h.model.chatRequests.length = 0;
  });
  const proposes = (...replies: ChatReply[]) => {
    h.model.chat = (_req, i) => replies[Math.min(i, replies.length - 1)] as ChatReply;
  };
  const proposal = (prompt: string, analysis = 'The feedback asks for a docs link.'): ChatReply => ({
    toolCalls: [{ name: 'propose_prompt', arguments: { analysis, prompt } }],
  });

  it('stores the improved prompt as a new version, with the analysis and a history row per version', async () => {
    proposes(proposal(v1, 'First version.'));
    const first = await h.runtime.promptOptimizer.optimize({
      namespace: ns,
      name: 'system',
      prompt: v1,
      sessions,
      runId: 'run-1',
    });
    expect(first).toMatchObject({ status: 'updated', version: 1, prompt: v1 });

    proposes(proposal(v2));
    const second = await h.runtime.promptOptimizer.optimize({
      namespace: ns,
      name: 'system',
      sessions,
      runId: 'run-2',
    });
    expect(second).toMatchObject({
      status: 'updated',
      version: 2,
      prompt: v2,
      analysis: 'The feedback asks for a docs link.',
    });
    expect(second.usage.promptTokens).toBeGreaterThan(0);

    // The model saw the stored prompt (not the caller's starting one) and the feedback, and was made to call the tool.
    const request = h.model.chatRequests[0] as ChatRequest;
    expect(request.messages[1]?.content).toContain(`<current_prompt>\n${v1}\n</current_prompt>`);
    expect(request.messages[1]?.content).toContain('always link the docs page');
    expect(request.tool_choice).toEqual({ type: 'function', function: { name: 'propose_prompt' } });

    const versions = await h.runtime.promptOptimizer.versions(ns, 'system');
    expect(versions.map((v) => [v.version, v.prompt, v.actor])).toEqual([
      [1, v1, 'prompt-optimizer:run-1'],
      [2, v2, 'prompt-optimizer:run-2'],
    ]);
  });

  it('applies a retried run once', async () => {
    proposes(proposal(`${v2} Be brief.`));
    const before = await storeState(h.runtime);
    const again = await h.runtime.promptOptimizer.optimize({ namespace: ns, name: 'system', sessions, runId: 'run-2' });
    expect(again).toMatchObject({ status: 'already-applied', version: 2, prompt: v2 });
    expect(h.model.chatRequests).toHaveLength(0);
    expect(await storeState(h.runtime)).toEqual(before);
  });

  it('keeps the version when the model proposes no change', async () => {
    proposes(proposal(v2, 'Nothing to change.'));
    const same = await h.runtime.promptOptimizer.optimize({ namespace: ns, name: 'system', sessions, runId: 'run-3' });
    expect(same).toMatchObject({ status: 'unchanged', version: 2, prompt: v2 });
    expect(await h.runtime.promptOptimizer.versions(ns, 'system')).toHaveLength(2);
  });

  it('sends back a proposal that drops a placeholder, and fails cleanly if it keeps doing so', async () => {
    proposes(proposal('You are a support agent. Answer the question.'), proposal(`${v2} Be brief.`));
    const repaired = await h.runtime.promptOptimizer.optimize({
      namespace: ns,
      name: 'system',
      sessions,
      runId: 'run-4',
    });
    expect(repaired).toMatchObject({ status: 'updated', version: 3, prompt: `${v2} Be brief.` });
    const repair = h.model.chatRequests[1] as ChatRequest;
    expect(repair.messages.find((m) => m.role === 'tool')?.content).toMatch(
      /must keep the placeholders \{product\}, \{user_name\}/,
    );

    h.model.chatRequests.length = 0;
    proposes(proposal('No placeholders at all.'));
    const before = await storeState(h.runtime);
    await expect(
      h.runtime.promptOptimizer.optimize({ namespace: ns, name: 'system', sessions, runId: 'run-5' }),
    ).rejects.toThrow(RetryableError);
    expect(h.model.chatRequests).toHaveLength(3);
    expect(await storeState(h.runtime)).toEqual(before);
  });

  it('stores nothing from a proposal the model did not finish', async () => {
    // A prompt cut off at the output limit can still arrive as well-formed arguments.
    proposes({ ...proposal(`${v2} Be`), finishReason: 'length' });
    const before = await storeState(h.runtime);
    await expect(
      h.runtime.promptOptimizer.optimize({ namespace: ns, name: 'system', sessions, runId: 'run-cut' }),
    ).rejects.toThrow(PermanentError);
    expect(h.model.chatRequests).toHaveLength(1);
    expect(await storeState(h.runtime)).toEqual(before);
  });

  it('sends back a proposal holding text Postgres cannot store: NUL, a lone surrogate', async () => {
    for (const [i, bad] of [`${v1}\u0000`, `${v1} caf\ud800`].entries()) {
      h.model.chatRequests.length = 0;
      proposes(proposal(bad), proposal(`${v1} Run ${i}.`));
      const repaired = await h.runtime.promptOptimizer.optimize({
        namespace: ns,
        name: 'unstorable',
        prompt: v1,
        sessions,
        runId: `run-unstorable-${i}`,
      });
      expect(repaired).toMatchObject({ status: 'updated', version: i + 1, prompt: `${v1} Run ${i}.` });
      expect(h.model.chatRequests).toHaveLength(2);
      expect((h.model.chatRequests[1] as ChatRequest).messages.find((m) => m.role === 'tool')?.content).toMatch(
        i === 0 ? /must not contain NUL characters/ : /must not contain a lone UTF-16 surrogate/,
      );
    }
  });

  it('answers an answer of thousands of calls without echoing them, and takes the next proposal', async () => {
    const flood: ChatReply = {
      toolCalls: Array.from({ length: 3_000 }, () => ({ name: 'not_a_tool', arguments: { x: 'y' } })),
    };
    proposes(flood, proposal(`${v1} Flooded.`));
    const repaired = await h.runtime.promptOptimizer.optimize({
      namespace: ns,
      name: 'flooded',
      prompt: v1,
      sessions,
      runId: 'run-flood',
    });
    expect(repaired).toMatchObject({ status: 'updated', prompt: `${v1} Flooded.` });
    expect(h.model.chatRequests).toHaveLength(2);
    // The first request and a short repair: not the 3,000 calls again, each with its answer.
    const [first, repair] = h.model.chatRequests.map((r) => JSON.stringify(r).length);
    expect((repair as number) - (first as number)).toBeLessThan(2_000);
  });

  it('refuses bad input before any model call', async () => {
    await expect(
      h.runtime.promptOptimizer.optimize({ namespace: ns, name: 'unknown', sessions, runId: 'run-6' }),
    ).rejects.toThrow(/no prompt "unknown" is stored/);
    await expect(
      h.runtime.promptOptimizer.optimize({ namespace: ns, name: 'system', sessions: [], runId: 'run-7' }),
    ).rejects.toThrow(InputError);
    expect(h.model.chatRequests).toHaveLength(0);
  });
});
