import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { InputError } from '../src/errors.js';
import { defaultKinds, defineKind } from '../src/memory/kinds.js';
import type { EngramClient } from '../src/sdk/index.js';
import type { ToolCall } from '../src/tools/session.js';
import { foodieModel } from './fake-model/foodie.js';
import { startHarness, type Harness } from './helpers/harness.js';
import {
  lifecycleScenario,
  sdkClientOf,
  staleUpdateScenario,
  storedContents,
  toolCall,
  toolThenReflectionScenario,
} from './helpers/tool-session.js';

/** The hot-path memory tools of the SDK, against real Redis and Postgres, the model faked over HTTP. */
describe('memory tools (manage_memory, search_memory)', () => {
  let h: Harness;
  let engram: EngramClient;
  beforeAll(async () => {
    h = await startHarness({ roles: ['reflection'], chat: foodieModel });
    engram = sdkClientOf(h);
  });
  afterAll(async () => {
    await engram?.close();
    await h?.stop();
  });

  const call = toolCall;
  const stored = (user: string) => storedContents(engram.store, user);

  it('defines manage_memory over the kind schema and search_memory with query, limit and kind', () => {
    const session = engram.memoryTools({ context: { userId: 'u0' } });
    expect(session.tools.map((t) => t.function.name)).toEqual(['manage_memory', 'search_memory']);
    const manage = session.tools[0]!.function.parameters as { properties: Record<string, { required?: string[] }> };
    expect(Object.keys(manage.properties)).toEqual(['action', 'id', 'document']);
    expect(manage.properties.document!.required).toEqual(['content']);
    const search = session.tools[1]!.function.parameters as { properties: object; required: string[] };
    expect(Object.keys(search.properties)).toEqual(['query', 'limit', 'kind', 'tokenBudget']);
    expect(search.required).toEqual(['query']);
  });

  it('keeps a search within its token budget: whole memories, best first, and says how many were left out', async () => {
    // Ten memories of 2,000 characters (about 500 tokens each): more than the default budget holds.
    for (let i = 0; i < 10; i++)
      await engram.store.put(['memories', 'u20'], `long-${i}`, {
        content: `Note ${i} on ramen: ${'miso '.repeat(395)}`,
      });
    const session = engram.memoryTools({ context: { userId: 'u20' } });
    type Found = { memories: { id: string; document: { content: string } }[]; leftOut?: number; note?: string };
    const search = async (args: Record<string, unknown>) =>
      (await call(session, 'search_memory', { query: 'ramen', limit: 10, ...args })) as unknown as Found;

    const all = await search({ tokenBudget: 32_000 });
    expect(all.memories).toHaveLength(10);
    expect(all).not.toHaveProperty('leftOut');
    const cut = await search({});
    expect(cut.memories.length).toBeGreaterThan(0);
    expect(cut.memories.length).toBeLessThan(10);
    // The best ones, whole: no document is cut, and the answer stays within 4,000 tokens.
    expect(cut.memories).toEqual(all.memories.slice(0, cut.memories.length));
    expect(JSON.stringify(cut.memories).length / 4).toBeLessThanOrEqual(4_000);
    expect(cut.leftOut).toBe(10 - cut.memories.length);
    expect(cut.note).toContain(`${cut.leftOut} more memories were found but left out`);
    expect(cut.note).toContain('tokenBudget 4000');
    expect(await search({ tokenBudget: 100 })).toMatchObject({ memories: [], leftOut: 10 });
    expect((await call(session, 'search_memory', { query: 'ramen', tokenBudget: 32_001 })).error).toContain(
      'tokenBudget',
    );
  });

  it('creates, finds, updates and deletes by short id, each a change with history by tool:manage_memory', async () => {
    await lifecycleScenario(engram, 'u1');
  });

  it('answers bad arguments with an error the model can act on, and writes nothing', async () => {
    const session = engram.memoryTools({ context: { userId: 'u2' } });
    await call(session, 'manage_memory', { action: 'create', document: { content: 'User plays chess' } });
    const deep = JSON.stringify({
      action: 'create',
      document: { content: 'x', more: JSON.parse('['.repeat(100) + ']'.repeat(100)) },
    });
    const bad: [string, unknown, string][] = [
      ['manage_memory', '{"action": "create", ', 'not valid JSON'],
      ['manage_memory', { action: 'remember', document: { content: 'x' } }, 'action'],
      ['manage_memory', { action: 'create' }, 'create needs a document'],
      ['manage_memory', { action: 'create', document: { content: '' } }, 'does not match the "memory" schema'],
      ['manage_memory', { action: 'create', document: { text: 'User plays go' } }, 'content'],
      ['manage_memory', { action: 'create', id: 'm1', document: { content: 'x' } }, 'create takes no id'],
      ['manage_memory', { action: 'update', document: { content: 'x' } }, 'update needs the id'],
      ['manage_memory', { action: 'update', id: 'm7', document: { content: 'x' } }, 'unknown id "m7"'],
      ['manage_memory', { action: 'update', id: 'm1' }, 'update needs the complete new document'],
      ['manage_memory', { action: 'delete', id: 'm1', document: { content: 'x' } }, 'delete takes no document'],
      ['manage_memory', { action: 'create', document: { content: 'a\u0000b' } }, 'NUL'],
      ['manage_memory', { action: 'create', document: { content: 'a\ud800b' } }, 'surrogate'],
      ['manage_memory', '{"action": "create", "document": {"__proto__": {"content": "x"}}}', '__proto__'],
      ['manage_memory', deep, 'nests deeper'],
      ['manage_memory', { action: 'create', document: { content: 'x' }, extra: 1 }, 'extra'],
      ['manage_memory', [1, 2], 'must be a JSON object'],
      ['search_memory', { query: '' }, 'query'],
      ['search_memory', { query: 'chess', limit: 1000 }, 'limit'],
      ['search_memory', { query: 'chess', kind: 'nope' }, 'kind'],
      ['forget_everything', {}, 'unknown tool "forget_everything"'],
    ];
    for (const [name, args, says] of bad) {
      const result = await call(session, name, args);
      expect(result.error, JSON.stringify(args).slice(0, 80)).toContain(says);
    }
    expect(await stored('u2')).toEqual(['User plays chess']);
  });

  it('refuses an update of a memory that changed since the model read it, and shows it as it is now', async () => {
    await staleUpdateScenario(engram, 'u3');
  });

  it("keeps a session to its context's namespace: another user's memories are neither found nor named", async () => {
    await engram.store.put(['memories', 'u5'], 'secret', { content: 'User u5 likes jazz' });
    const session = engram.memoryTools({ context: { userId: 'u4' } });
    expect(await call(session, 'search_memory', { query: 'User u5 likes jazz' })).toEqual({ memories: [] });
    expect((await call(session, 'manage_memory', { action: 'delete', id: 'm1' })).error).toContain('unknown id');
    expect(await stored('u5')).toEqual(['User u5 likes jazz']);
  });

  it('refuses options that cannot work before the model sees a tool', async () => {
    expect(() => engram.memoryTools({ context: { user: 'u1' } })).toThrow(/context is missing "userId"/);
    expect(() => engram.memoryTools({ context: { userId: 'u1', 'bad key': 'x' } })).toThrow(InputError);
    const elsewhere = defineKind({ ...defaultKinds[0]!, namespace: ['elsewhere', '{userId}'] });
    const session = engram.memoryTools({ context: { userId: 'u1' }, kinds: [elsewhere] });
    await expect(
      session.runToolCall({ id: 'c', function: { name: 'search_memory', arguments: '{"query":"x"}' } }),
    ).rejects.toThrow(/differs from the service's/);
    const unknown = defineKind({ ...defaultKinds[0]!, name: 'note', schema: z.object({ text: z.string() }) });
    await expect(
      engram
        .memoryTools({ context: { userId: 'u1' }, kinds: [unknown] })
        .runToolCall({ id: 'c', function: { name: 'search_memory', arguments: '{"query":"x"}' } }),
    ).rejects.toThrow(/not one of the service's/);
  });

  it('answers a custom tool call with what to do instead, and refuses what is no tool call', async () => {
    const session = engram.memoryTools({ context: { userId: 'u6' } });
    // What openai types as a tool call may be a custom tool's (free text, no JSON arguments).
    const custom = await session.runToolCall({
      id: 'c1',
      type: 'custom',
      custom: { name: 'manage_memory', input: 'remember that I like tea' },
    });
    expect(custom).toEqual({
      role: 'tool',
      tool_call_id: 'c1',
      content: JSON.stringify({
        error: 'manage_memory: the memory tools are function tools; call them with JSON arguments',
      }),
    });
    const notACall = { id: 'c2', function: { name: 'manage_memory' } } as unknown as ToolCall;
    await expect(session.runToolCall(notACall)).rejects.toThrow(InputError);
    await expect(session.runToolCall(notACall)).rejects.toThrow(/tool_calls[\s\S]*arguments/);
    expect(await stored('u6')).toEqual([]);
  });

  it("shows a tool's memory to the next reflection as existing, so the two paths store a fact once", async () => {
    await toolThenReflectionScenario(engram, h.model, 'u9');
  });
});
