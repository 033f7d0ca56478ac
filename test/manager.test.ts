import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { RetryableError } from '../src/errors.js';
import { defaultKinds, defineKind, type CollectionKind } from '../src/memory/kinds.js';
import { MemoryManager, type ExistingMemory } from '../src/memory/manager.js';
import { FakeModel, readPrompt, type ChatHandler, type ChatRequest } from './fake-model/server.js';
import { chatModelFor, silentLog } from './helpers/models.js';

/**
 * The memory manager on its own (no store, no queue): turns and memories in, operations out,
 * over HTTP to the fake model so the real openai SDK request and parsing run.
 */
const ns = ['memories', 'u1'];
const memory = (key: string, content: string, version = 1): ExistingMemory => ({
  namespace: ns,
  key,
  kind: 'memory',
  version,
  document: { content },
});
const turns = [{ role: 'user' as const, content: 'These days I like miso ramen, and I no longer like pasta.' }];
const existing = [memory('key-ramen-0001', 'User loves ramen'), memory('key-pasta-0002', 'User likes pasta')];

const profile = defineKind({
  name: 'user_profile',
  description: 'Stable facts about the user',
  namespace: ['profiles', '{userId}'],
  mode: 'profile',
  schema: z.object({ name: z.string().min(1), city: z.string().optional(), languages: z.array(z.string()).optional() }),
});

describe('memory manager', () => {
  const model = new FakeModel();
  let manager: MemoryManager;
  beforeAll(async () => {
    await model.start();
    manager = new MemoryManager(chatModelFor(model), silentLog);
  });
  afterAll(async () => model.stop());
  const remembers = (content: string) => ({ toolCalls: [{ name: 'insert_memory', arguments: { content } }] });
  /** The model's answers, in order; the last one repeats. */
  const script = (...replies: ReturnType<ChatHandler>[]) => {
    model.chatRequests.length = 0;
    model.chat = (_req, i) => replies[Math.min(i, replies.length - 1)] as ReturnType<ChatHandler>;
  };

  it('shows memories under aliases, offers one tool per kind plus update and delete, and takes parallel calls', async () => {
    script({
      toolCalls: [
        {
          name: 'update_memory',
          arguments: { id: 'm1', document: { content: 'User loves ramen, especially miso ramen' } },
        },
        { name: 'delete_memory', arguments: { id: 'm2' } },
      ],
    });
    const result = await manager.extract({ kinds: defaultKinds, existing, turns });
    expect(result.ops).toEqual([
      { op: 'update', target: existing[0], document: { content: 'User loves ramen, especially miso ramen' } },
      { op: 'delete', target: existing[1] },
    ]);
    expect(result.calls).toBe(1);
    expect(result.usage.promptTokens).toBeGreaterThan(0);
    const request = model.chatRequests[0] as ChatRequest;
    const prompt = readPrompt(request);
    expect(prompt.existing.map((m) => m.id)).toEqual(['m1', 'm2']);
    expect(JSON.stringify(request)).not.toContain('key-ramen-0001');
    expect(prompt.tools).toEqual(['insert_memory', 'update_memory', 'delete_memory']);
    expect(request).toMatchObject({ parallel_tool_calls: true, tool_choice: 'auto', model: 'fake-chat' });
  });

  it('drops the same insert sent twice in one answer, and an update that changes nothing', async () => {
    script({
      toolCalls: [
        { name: 'insert_memory', arguments: { content: 'User has a dog' } },
        { name: 'insert_memory', arguments: { content: 'User has a dog' } },
        { name: 'update_memory', arguments: { id: 'm1', document: { content: 'User loves ramen' } } },
      ],
    });
    const result = await manager.extract({ kinds: defaultKinds, existing, turns });
    expect(result.ops).toEqual([{ op: 'insert', kind: 'memory', document: { content: 'User has a dog' } }]);
  });

  it('numbers the new turns and takes the turn each call names, ignoring one that names none', async () => {
    const strict = defineKind({
      name: 'pet',
      description: 'A pet of the user',
      namespace: ['pets', '{userId}'],
      schema: z.strictObject({ name: z.string().min(1) }),
    });
    // A kind with a field of that name keeps it: its insert tool offers no turn.
    const match = defineKind({
      name: 'match',
      description: 'A game the user played',
      namespace: ['games', '{userId}'],
      schema: z.object({ winner: z.string(), said_in_turn: z.number() }),
    });
    const three = [
      { role: 'user' as const, content: 'I work at Initech', createdAt: '2020-01-01T00:00:00.000Z' },
      { role: 'user' as const, content: 'I adopted Rex', createdAt: '2024-01-01T00:00:00.000Z' },
      { role: 'user' as const, content: 'I no longer like pasta' },
    ];
    script({
      toolCalls: [
        { name: 'insert_memory', arguments: { content: 'User works at Initech', said_in_turn: 1 } },
        { name: 'insert_pet', arguments: { name: 'Rex', said_in_turn: 2 } },
        { name: 'insert_match', arguments: { winner: 'Ana', said_in_turn: 2 } },
        {
          name: 'update_memory',
          arguments: { id: 'm1', document: { content: 'User loves ramen a lot' }, said_in_turn: 4 },
        },
        { name: 'delete_memory', arguments: { id: 'm2', said_in_turn: 3 } },
        { name: 'insert_memory', arguments: { content: 'User is tall', said_in_turn: '2' } },
        { name: 'insert_memory', arguments: { content: 'User is kind', said_in_turn: 0 } },
      ],
    });
    const result = await manager.extract({ kinds: [defaultKinds[0]!, strict, match], existing, turns: three });
    expect(result.calls).toBe(1);
    expect(result.ops).toStrictEqual([
      { op: 'insert', kind: 'memory', document: { content: 'User works at Initech' }, turn: 0 },
      { op: 'insert', kind: 'pet', document: { name: 'Rex' }, turn: 1 },
      { op: 'insert', kind: 'match', document: { winner: 'Ana', said_in_turn: 2 } },
      { op: 'update', target: existing[0], document: { content: 'User loves ramen a lot' } },
      { op: 'delete', target: existing[1], turn: 2 },
      { op: 'insert', kind: 'memory', document: { content: 'User is tall' } },
      { op: 'insert', kind: 'memory', document: { content: 'User is kind' } },
    ]);
    const request = model.chatRequests[0] as ChatRequest;
    expect(readPrompt(request).turns).toEqual([
      { turn: 1, role: 'user', content: 'I work at Initech', at: '2020-01-01T00:00:00.000Z' },
      { turn: 2, role: 'user', content: 'I adopted Rex', at: '2024-01-01T00:00:00.000Z' },
      { turn: 3, role: 'user', content: 'I no longer like pasta' },
    ]);
    const params = Object.fromEntries(
      (request.tools ?? []).map((t) => [t.function.name, t.function.parameters as { properties: object }]),
    );
    for (const name of ['insert_memory', 'insert_pet', 'update_memory', 'delete_memory'])
      expect(params[name]?.properties).toHaveProperty('said_in_turn.type', 'integer');
    expect(params.insert_match?.properties).toHaveProperty('said_in_turn.type', 'number');
  });

  it.each([
    ['an invented alias', { name: 'delete_memory', arguments: { id: 'm7' } }, /unknown id "m7".*m1, m2/],
    ['a raw key instead of an alias', { name: 'delete_memory', arguments: { id: 'key-pasta-0002' } }, /unknown id/],
    [
      'a schema-invalid document',
      { name: 'insert_memory', arguments: { content: '' } },
      /does not match the "memory" schema/,
    ],
    [
      'an extra field',
      { name: 'update_memory', arguments: { id: 'm1', document: { content: 'x' }, why: 'because' } },
      /why/,
    ],
    ['malformed JSON', { name: 'insert_memory', arguments: '{"content": "User likes ' }, /not valid JSON/],
    ['an unknown tool', { name: 'insert_recipe', arguments: { content: 'x' } }, /unknown tool "insert_recipe"/],
  ])('sends %s back to the model and takes the repaired answer', async (_name, bad, reason) => {
    script(
      { toolCalls: [{ name: 'insert_memory', arguments: { content: 'User loves miso ramen' } }, bad] },
      { toolCalls: [{ name: 'delete_memory', arguments: { id: 'm2' } }] },
    );
    const result = await manager.extract({ kinds: defaultKinds, existing, turns });
    // The accepted call of the first answer stands; the repaired call joins it.
    expect(result.ops).toEqual([
      { op: 'insert', kind: 'memory', document: { content: 'User loves miso ramen' } },
      { op: 'delete', target: existing[1] },
    ]);
    expect(result.calls).toBe(2);
    const repair = model.chatRequests[1] as ChatRequest;
    const toolResults = repair.messages.filter((m) => m.role === 'tool').map((m) => m.content);
    expect(toolResults[0]).toBe('accepted');
    expect(toolResults[1]).toMatch(reason);
    expect(repair.messages.at(-1)?.content).toMatch(/send corrected calls for the rejected ones only/);
  });

  it('fails cleanly, with no operations, when the model stays wrong through every repair round', async () => {
    script({
      toolCalls: [
        { name: 'insert_memory', arguments: { content: 'User loves miso ramen' } },
        { name: 'delete_memory', arguments: { id: 'm9' } },
      ],
    });
    const usage: number[] = [];
    const failure = manager.extract({
      kinds: defaultKinds,
      existing,
      turns,
      onUsage: (u) => usage.push(u.promptTokens),
    });
    await expect(failure).rejects.toThrow(RetryableError);
    await expect(failure).rejects.toThrow(/still invalid after 2 repair round\(s\): delete_memory: unknown id "m9"/);
    expect(model.chatRequests).toHaveLength(3);
    // Tokens of the failed extraction were spent all the same, and reported.
    expect(usage).toHaveLength(3);
  });

  it('refuses to change the same memory twice in one answer', async () => {
    script(
      {
        toolCalls: [
          { name: 'update_memory', arguments: { id: 'm1', document: { content: 'User loves miso ramen' } } },
          { name: 'delete_memory', arguments: { id: 'm1' } },
        ],
      },
      { content: 'no changes' },
    );
    const result = await manager.extract({ kinds: defaultKinds, existing, turns });
    expect(result.ops).toEqual([{ op: 'update', target: existing[0], document: { content: 'User loves miso ramen' } }]);
    const repair = model.chatRequests[1] as ChatRequest;
    expect(repair.messages.filter((m) => m.role === 'tool').map((m) => m.content)[1]).toMatch(
      /already changed in this answer/,
    );
  });

  it('respects the insert/update/delete switches of a collection', async () => {
    const appendOnly = defineKind({
      ...(defaultKinds[0] as CollectionKind),
      enableUpdates: false,
      enableDeletes: false,
    });
    script({ toolCalls: [{ name: 'delete_memory', arguments: { id: 'm1' } }] });
    await expect(manager.extract({ kinds: [appendOnly], existing, turns })).rejects.toThrow(
      /"memory" memories cannot be deleted/,
    );
    expect(readPrompt(model.chatRequests[0] as ChatRequest).tools).toEqual(['insert_memory']);
  });

  it('asks nothing when no kind may change anything', async () => {
    script(remembers('never asked'));
    const frozen = defineKind({
      ...(defaultKinds[0] as CollectionKind),
      enableInserts: false,
      enableUpdates: false,
      enableDeletes: false,
    });
    expect(await manager.extract({ kinds: [frozen], existing, turns })).toEqual({
      ops: [],
      usage: { promptTokens: 0, completionTokens: 0 },
      calls: 0,
    });
    expect(model.chatRequests).toHaveLength(0);
  });

  it('creates a profile from its first patch, then merges later patches into it', async () => {
    const kinds = [defaultKinds[0]!, profile];
    script({ toolCalls: [{ name: 'patch_user_profile', arguments: { name: 'Ana', city: 'Lisbon' } }] });
    const created = await manager.extract({
      kinds,
      existing: [],
      turns: [{ role: 'user', content: "I'm Ana, from Lisbon" }],
    });
    expect(created.ops).toEqual([{ op: 'insert', kind: 'user_profile', document: { name: 'Ana', city: 'Lisbon' } }]);
    const prompt = readPrompt(model.chatRequests[0] as ChatRequest);
    expect(prompt.profiles).toEqual({ user_profile: null });
    expect(prompt.tools).toEqual(['insert_memory', 'patch_user_profile', 'update_memory', 'delete_memory']);

    const current: ExistingMemory = {
      namespace: ['profiles', 'u1'],
      key: 'profile:user_profile',
      kind: 'user_profile',
      version: 1,
      document: { name: 'Ana', city: 'Lisbon' },
    };
    script({
      toolCalls: [
        { name: 'patch_user_profile', arguments: { city: null, languages: ['pt', 'en'] } },
        { name: 'patch_user_profile', arguments: { city: 'Porto' } },
      ],
    });
    const patched = await manager.extract({
      kinds,
      existing: [current],
      turns: [{ role: 'user', content: 'I moved to Porto; I speak pt and en' }],
    });
    expect(patched.ops).toEqual([
      { op: 'update', target: current, document: { name: 'Ana', city: 'Porto', languages: ['pt', 'en'] } },
    ]);
    // The profile is shown whole, not under an alias the model could update or delete.
    const prompt2 = readPrompt(model.chatRequests[0] as ChatRequest);
    expect(prompt2.profiles).toEqual({ user_profile: { name: 'Ana', city: 'Lisbon' } });
    expect(prompt2.existing).toEqual([]);
  });

  it("sends back a profile patch nested deeper than the store's 64 levels, or longer than its 1,000,000 characters", async () => {
    const deep = `${'{"a":'.repeat(20_000)}1${'}'.repeat(20_000)}`;
    const ana = { toolCalls: [{ name: 'patch_user_profile', arguments: { name: 'Ana' } }] };
    for (const [bad, reason] of [
      [`{"name":"Ana","city":${deep}}`, /patch_user_profile: city(\.a)* nests deeper than \d+ levels/],
      [
        { name: 'Ana', city: 'x'.repeat(1_000_000) },
        /the patched profile is beyond what the store holds: must be at most 1000000 characters of JSON/,
      ],
    ] as const) {
      script({ toolCalls: [{ name: 'patch_user_profile', arguments: bad }] }, ana);
      const result = await manager.extract({ kinds: [profile], existing: [], turns });
      expect(result.ops).toEqual([{ op: 'insert', kind: 'user_profile', document: { name: 'Ana' } }]);
      expect((model.chatRequests[1] as ChatRequest).messages.find((m) => m.role === 'tool')?.content).toMatch(reason);
    }
  });

  it('bounds what an answer of many rejected calls sends back and fails with', async () => {
    script({ toolCalls: Array.from({ length: 150 }, (_, i) => ({ name: `nope_${i}`, arguments: {} })) });
    const failure = await manager.extract({ kinds: defaultKinds, existing, turns }).catch((e: Error) => e);
    expect(failure).toBeInstanceOf(RetryableError);
    expect((failure as Error).message).toMatch(
      /: unknown tool "nope_0"; .*unknown tool "nope_9"; and 140 more problem\(s\) left out$/,
    );
    expect((failure as Error).message.length).toBeLessThan(1_000);

    // Past 200 calls, an answer is not repeated in the repair request at all.
    script({ toolCalls: Array.from({ length: 5_000 }, (_, i) => ({ name: `nope_${i}`, arguments: {} })) });
    const refused = await manager.extract({ kinds: defaultKinds, existing, turns }).catch((e: Error) => e);
    expect((refused as Error).message).toMatch(/the answer made 5000 tool calls, more than the 200 allowed/);
    expect(model.chatRequests.map((r) => JSON.stringify(r).length).every((n) => n < 10_000)).toBe(true);
  });

  it('keeps a merge within its groups: a rewrite takes in only memories of its own group', async () => {
    const groups = [
      [memory('a', 'User has a cat'), memory('b', 'User has a cat named Tom')],
      [memory('c', 'User is allergic to peanuts'), memory('d', 'User avoids tree nuts')],
    ];
    const rewrite = (content: string) => ({ name: 'update_memory', arguments: { id: 'm1', document: { content } } });
    script(
      {
        toolCalls: [
          rewrite('User has a cat named Tom and is allergic to peanuts'),
          { name: 'delete_memory', arguments: { id: 'm3' } },
        ],
      },
      { toolCalls: [rewrite('User has a cat named Tom'), { name: 'delete_memory', arguments: { id: 'm2' } }] },
    );
    const result = await manager.merge({ kind: defaultKinds[0]!, groups });
    expect(result.ops).toEqual([
      { op: 'update', target: groups[0]![0], document: { content: 'User has a cat named Tom' } },
      { op: 'delete', target: groups[0]![1] },
    ]);
    const errors = (model.chatRequests[1] as ChatRequest).messages
      .filter((m) => m.role === 'tool')
      .map((m) => m.content);
    expect(errors[0]).toMatch(/"m1" was rewritten, but no other memory of its group \(m1, m2\) was deleted/);
    expect(errors[1]).toMatch(/not kept: nothing of the group of "m3" \(m3, m4\) was rewritten/);
    // A repeat deleted alone, its group's other memory kept as it is, stands.
    script({ toolCalls: [{ name: 'delete_memory', arguments: { id: 'm4' } }] });
    expect((await manager.merge({ kind: defaultKinds[0]!, groups })).ops).toEqual([
      { op: 'delete', target: groups[1]![1] },
    ]);
  });

  it('sends an invalid first profile patch back, naming the missing field', async () => {
    script(
      { toolCalls: [{ name: 'patch_user_profile', arguments: { city: 'Lisbon' } }] },
      { toolCalls: [{ name: 'patch_user_profile', arguments: { name: 'Ana', city: 'Lisbon' } }] },
    );
    const result = await manager.extract({
      kinds: [profile],
      existing: [],
      turns: [{ role: 'user', content: "I'm Ana, from Lisbon" }],
    });
    expect(result.ops).toEqual([{ op: 'insert', kind: 'user_profile', document: { name: 'Ana', city: 'Lisbon' } }]);
    const toolResult = (model.chatRequests[1] as ChatRequest).messages.find((m) => m.role === 'tool')?.content;
    expect(toolResult).toMatch(/no profile yet.*name/s);
  });
});
