import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { expect } from 'vitest';
import { MCP_TOOLS } from '../../src/mcp/tools.js';
import { waitFor, type Harness } from './harness.js';

/** A tool's answer: its JSON text parsed, and whether MCP flagged it an error. */
export async function callTool(client: Client, name: string, args: Record<string, unknown>) {
  const result = await client.callTool({ name, arguments: args });
  const text = (result.content as { type: string; text: string }[])[0]?.text ?? '';
  // engram's answers are JSON; the SDK's own refusals (arguments failing the schema) plain text.
  let body: Record<string, unknown>;
  try {
    body = JSON.parse(text) as Record<string, unknown>;
  } catch {
    body = { error: text };
  }
  return { isError: result.isError === true, body };
}

/**
 * Lists and calls every tool and resource of engram's MCP server as one user would, over
 * whichever transport `client` uses, against the harness's real store and reflection worker
 * (the foodie model). The session's user is u1 of tenant acme, with kinds
 * test/fixtures/mcp-kinds.yaml; the profile `{ name: 'Ana' }` must be stored already.
 */
export async function exerciseEveryTool(client: Client, h: Harness): Promise<void> {
  const stored = async () =>
    (await h.runtime.storeApi.search({ namespacePrefix: ['acme', 'memories', 'u1'], limit: 100 }))
      .map((m) => m.value.content)
      .sort();

  const { tools } = await client.listTools();
  expect(tools.map((t) => t.name).sort()).toEqual([...MCP_TOOLS].sort());
  for (const tool of tools) expect(tool.inputSchema.type).toBe('object');
  const search = tools.find((t) => t.name === 'search_memory');
  expect(Object.keys(search?.inputSchema.properties ?? {})).toEqual(['query', 'limit', 'kind', 'tokenBudget']);

  // remember (now), through the tool path: a change with history by tool:remember.
  expect(await callTool(client, 'remember', { document: { content: 'User loves ramen' } })).toEqual({
    isError: false,
    body: { result: 'created', id: 'm1' },
  });
  expect((await callTool(client, 'search_memory', { query: 'ramen' })).body).toMatchObject({
    memories: [{ id: 'm1', kind: 'memory', document: { content: 'User loves ramen' } }],
  });
  // The prompt block alone, each memory named by the id forget and memory_history take.
  const recalled = await callTool(client, 'recall', { query: 'what do I like to eat?' });
  const updated = /updated="(\d{4}-\d{2}-\d{2})"/.exec(String(recalled.body.prompt))?.[1];
  const lines = [
    '<profile kind="user_profile">{"name":"Ana"}</profile>',
    `<memory id="m1" kind="memory" updated="${updated}">User loves ramen</memory>`,
  ];
  expect(recalled.body).toEqual({ prompt: ['<memories>', ...lines, '</memories>'].join('\n') });
  // Both search tools keep to a token budget, leaving out whole memories and saying so. The id
  // is counted: a budget that would hold the memory's line without it leaves the memory out.
  const tokens = (text: string) => Math.ceil(text.length / 4);
  const withoutId = (lines[1] as string).replace(' id="m1"', '');
  const tight = tokens('<memories>\n\n</memories>') + tokens(lines[0] as string) + 1 + tokens(withoutId) + 1;
  expect((await callTool(client, 'recall', { query: 'what do I like to eat?', tokenBudget: tight })).body).toEqual({
    prompt: ['<memories>', lines[0], '</memories>'].join('\n'),
    leftOut: 1,
    note: expect.stringContaining('1 more memory was found but left out'),
  });
  expect((await callTool(client, 'recall', { query: 'what do I like to eat?', tokenBudget: tight + 2 })).body).toEqual(
    recalled.body,
  );
  expect((await callTool(client, 'recall', { query: 'what do I like to eat?', tokenBudget: 10 })).body).toEqual({
    prompt: '',
    leftOut: 2,
    note: expect.stringContaining(
      '2 more memories were found but left out to keep the prompt block within tokenBudget 10',
    ),
  });
  expect((await callTool(client, 'search_memory', { query: 'ramen', tokenBudget: 5 })).body).toMatchObject({
    memories: [],
    leftOut: 1,
    note: expect.stringContaining('1 more memory was found but left out to keep this answer within tokenBudget 5'),
  });
  const history = await callTool(client, 'memory_history', { id: 'm1' });
  expect(history.body).toMatchObject({ id: 'm1', history: [{ op: 'insert', version: 1, by: 'tool:remember' }] });

  // remember (turns): enqueued for background formation, which sees m1 and stores only what is new.
  expect(
    (await callTool(client, 'remember', { messages: [{ role: 'user', content: 'I love ramen! I also like pasta.' }] }))
      .body,
  ).toEqual({ result: 'enqueued', accepted: 1, duplicates: 0 });
  await waitFor(async () => (await stored()).length === 2);
  expect(await stored()).toEqual(['User likes pasta', 'User loves ramen']);

  expect((await callTool(client, 'forget', { id: 'm1' })).body).toEqual({ result: 'deleted', id: 'm1' });
  expect(await stored()).toEqual(['User likes pasta']);
  // What was forgotten keeps its history, read by the id the model knows, as the HTTP route reads it by key.
  const afterForget = await callTool(client, 'memory_history', { id: 'm1' });
  expect(afterForget.isError).toBe(false);
  expect(afterForget.body).toMatchObject({
    id: 'm1',
    history: [
      { op: 'insert', version: 1, by: 'tool:remember', after: { content: 'User loves ramen' } },
      { op: 'delete', version: 1, by: 'tool:forget', before: { content: 'User loves ramen' }, after: null },
    ],
  });
  // Within its token budget, the latest changes are kept (oldest first) and the earlier ones counted.
  const [insert, deletion] = afterForget.body.history as unknown[];
  const lastOnly = tokens(JSON.stringify({ id: 'm1', history: [] })) + tokens(JSON.stringify(deletion)) + 1;
  expect((await callTool(client, 'memory_history', { id: 'm1', tokenBudget: lastOnly })).body).toEqual({
    id: 'm1',
    history: [deletion],
    leftOut: 1,
    note: expect.stringContaining('1 earlier change was left out to keep this answer within tokenBudget'),
  });
  expect((await callTool(client, 'memory_history', { id: 'm1', tokenBudget: lastOnly - 1 })).body).toMatchObject({
    history: [],
    leftOut: 2,
  });
  expect(afterForget.body).toEqual({ id: 'm1', history: [insert, deletion] });

  // Bad arguments: a tool error the model can read, and nothing written.
  const bad: [string, Record<string, unknown>, string][] = [
    ['forget', { id: 'm1' }, 'memory m1 was deleted'],
    ['forget', {}, 'id'],
    ['remember', {}, 'give either messages or document'],
    ['remember', { document: { content: '' } }, 'does not match the "memory" schema'],
    ['remember', { document: { content: 'a\u0000b' } }, 'NUL'],
    ['remember', { messages: [{ role: 'robot', content: 'hi' }] }, 'role'],
    ['search_memory', { query: '' }, 'query'],
    ['memory_history', { id: 'm42' }, 'unknown id "m42"'],
    ['recall', { query: 'x', limit: 0 }, 'limit'],
    // Hostile sizes: refused by their bound, before anything is embedded or enqueued.
    ['remember', { messages: Array.from({ length: 101 }, () => ({ role: 'user', content: 'hi' })) }, 'messages'],
    ['remember', { document: { content: 'x'.repeat(250_000) } }, 'at most 200000 characters'],
    ['search_memory', { query: 'x'.repeat(2_001) }, 'query'],
  ];
  for (const [name, args, says] of bad) {
    const r = await callTool(client, name, args);
    expect(r.isError, `${name} ${JSON.stringify(args)}`).toBe(true);
    expect(String(r.body.error)).toContain(says);
  }
  expect(await stored()).toEqual(['User likes pasta']);

  const { resources } = await client.listResources();
  expect(resources.map((r) => r.uri)).toEqual(['engram://profiles/user_profile']);
  const read = await client.readResource({ uri: 'engram://profiles/user_profile' });
  expect(JSON.parse((read.contents[0] as { text: string }).text)).toEqual({ name: 'Ana' });
}

/** Stores u1's profile of tenant acme, which the profile resource and recall return. */
export async function storeProfile(h: Harness): Promise<void> {
  await h.runtime.storeApi.put({
    namespace: ['acme', 'profiles', 'u1'],
    key: 'profile:user_profile',
    kind: 'user_profile',
    value: { name: 'Ana' },
  });
}
