import { expect } from 'vitest';
import { createLogger } from '../../src/observability/logger.js';
import { EngramClient } from '../../src/sdk/index.js';
import type { ToolSession } from '../../src/tools/session.js';
import { readPrompt, type FakeModel } from '../fake-model/server.js';
import { TEST_DIMENSIONS, waitFor, type Harness } from './harness.js';

/**
 * What the memory tools' tests share, whichever process the session runs in (the SDK's, over
 * the store; the HTTP client's, over the API): one tool call as a model makes it, and the
 * scenarios both must pass the same way.
 */

/** What the scenarios run through: the SDK's client or the HTTP client. */
export interface ScenarioClient {
  memoryTools(options: { context: Record<string, string> }): ToolSession;
  store: ScenarioStore;
  enqueue(input: {
    threadId: string;
    context: Record<string, string>;
    messages: { id: string; role: 'user'; content: string }[];
  }): Promise<unknown>;
}

/** The store calls the scenarios read and write through (the SDK's and the HTTP client's `store`). */
export interface ScenarioStore {
  search(prefix: string[], options: { limit?: number }): Promise<{ key: string; value: Record<string, unknown> }[]>;
  put(namespace: string[], key: string, value: Record<string, unknown>): Promise<unknown>;
  history(namespace: string[], key: string): Promise<{ op: string; version: number; actor: string }[]>;
}

/** An SDK client of the harness' service, with the store and the embedding endpoint the tools need. */
export function sdkClientOf(h: Harness): EngramClient {
  return new EngramClient({
    redisUrl: h.env.REDIS_URL as string,
    databaseUrl: h.env.DATABASE_URL,
    prefix: h.env.ENGRAM_PREFIX,
    schema: h.env.DATABASE_SCHEMA,
    embedding: { apiKey: 'test-key', baseURL: h.model.url, dimensions: TEST_DIMENSIONS },
    log: createLogger({ level: 'silent' }),
  });
}

let calls = 0;
/** One call as a model makes it; the parsed content of the tool message. */
export async function toolCall(session: ToolSession, name: string, args: unknown) {
  const id = `call_${++calls}`;
  const message = await session.runToolCall({
    id,
    function: { name, arguments: typeof args === 'string' ? args : JSON.stringify(args) },
  });
  expect(message).toMatchObject({ role: 'tool', tool_call_id: id });
  return JSON.parse(message.content) as Record<string, unknown> & { error?: string };
}

/** The contents of a user's memories (default kinds), sorted. */
export const storedContents = async (store: ScenarioStore, user: string) =>
  (await store.search(['memories', user], { limit: 100 })).map((m) => m.value.content).sort();

/**
 * Create, find, update (and again to the same document: no change) and delete, by short ids,
 * across two sessions (two conversations) of one user; each write a change with history by
 * `tool:manage_memory`.
 */
export async function lifecycleScenario(client: ScenarioClient, user: string) {
  const { store } = client;
  const newSession = () => client.memoryTools({ context: { userId: user } });
  const session = newSession();
  expect(
    await toolCall(session, 'manage_memory', { action: 'create', document: { content: 'User is vegetarian' } }),
  ).toEqual({ result: 'created', id: 'm1' });
  expect(await toolCall(session, 'search_memory', { query: 'diet' })).toMatchObject({
    memories: [{ id: 'm1', kind: 'memory', document: { content: 'User is vegetarian' } }],
  });
  // A second session (the next conversation) finds it under its own ids.
  const next = newSession();
  expect(await toolCall(next, 'search_memory', { query: 'vegetarian', limit: 1 })).toMatchObject({
    memories: [{ id: 'm1' }],
  });
  const vegan = { action: 'update', id: 'm1', document: { content: 'User is vegan' } };
  expect(await toolCall(next, 'manage_memory', vegan)).toEqual({ result: 'updated', id: 'm1' });
  // The same document again is no change: no version, no history row.
  expect(await toolCall(next, 'manage_memory', vegan)).toEqual({ result: 'unchanged', id: 'm1' });
  const [item] = await store.search(['memories', user], {});
  expect(item).toMatchObject({ value: { content: 'User is vegan' }, version: 2, kind: 'memory' });
  expect(await toolCall(next, 'manage_memory', { action: 'delete', id: 'm1' })).toEqual({
    result: 'deleted',
    id: 'm1',
  });
  expect(await storedContents(store, user)).toEqual([]);
  const history = await store.history(['memories', user], item!.key);
  expect(history.map((e) => [e.op, e.version, e.actor])).toEqual([
    ['insert', 1, 'tool:manage_memory'],
    ['update', 2, 'tool:manage_memory'],
    ['delete', 2, 'tool:manage_memory'],
  ]);
  // A deleted memory's id can change nothing more (it still names its history, for MCP's memory_history).
  expect((await toolCall(next, 'manage_memory', { action: 'delete', id: 'm1' })).error).toContain(
    'memory m1 was deleted',
  );
}

/**
 * A memory another writer changed after the model read it: the update is refused with the
 * memory as it is now, nothing is written, and the model's next call (having seen it) applies.
 */
export async function staleUpdateScenario(client: ScenarioClient, user: string) {
  const { store } = client;
  const session = client.memoryTools({ context: { userId: user } });
  await toolCall(session, 'manage_memory', { action: 'create', document: { content: 'User lives in Lisbon' } });
  const [item] = await store.search(['memories', user], {});
  await store.put(['memories', user], item!.key, { content: 'User lives in Porto' });
  const stale = await toolCall(session, 'manage_memory', {
    action: 'update',
    id: 'm1',
    document: { content: 'User lives in Lisbon, near the river' },
  });
  expect(stale.error).toContain('memory m1 changed since you read it; nothing was changed');
  expect(stale.error).toContain('User lives in Porto');
  expect(await storedContents(store, user)).toEqual(['User lives in Porto']);
  expect(await toolCall(session, 'manage_memory', { action: 'delete', id: 'm1' })).toEqual({
    result: 'deleted',
    id: 'm1',
  });
  expect(await storedContents(store, user)).toEqual([]);
}

/**
 * The seeds' ramen/pasta case on both paths: a tool stores "User loves ramen" as the user says
 * it, then the reflection of the same turns sees it as an existing memory, and each fact is
 * stored once (the fake model is test/fake-model/foodie.ts).
 */
export async function toolThenReflectionScenario(client: ScenarioClient, model: FakeModel, user: string) {
  const { store } = client;
  const context = { userId: user };
  // The agent stores the fact on the hot path, as the user says it...
  await toolCall(client.memoryTools({ context }), 'manage_memory', {
    action: 'create',
    document: { content: 'User loves ramen' },
  });
  // ...and the same turns reach background formation.
  const before = model.chatRequests.length;
  await client.enqueue({
    threadId: 'ramen',
    context,
    messages: [{ id: 'r1', role: 'user', content: 'I love ramen! I also like pasta.' }],
  });
  await waitFor(async () => (await storedContents(store, user)).length === 2);
  const reflection = model.chatRequests.slice(before).find((r) => r.tools?.length);
  expect(readPrompt(reflection!).existing.map((m) => m.document.content)).toEqual(['User loves ramen']);
  expect(await storedContents(store, user)).toEqual(['User likes pasta', 'User loves ramen']);
}
