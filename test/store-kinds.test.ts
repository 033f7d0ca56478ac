import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineKind } from '../src/memory/kinds.js';
import { sdkClient, startHarness, type Harness } from './helpers/harness.js';
import { send } from './helpers/hostile.js';

const hour = 3_600_000;
const content = z.object({ content: z.string() });
const kinds = [
  defineKind({ name: 'fact', description: 'A fact', namespace: ['facts', '{userId}'], schema: content, ttlMs: hour }),
  // Two kinds in one namespace: a put without a kind there cannot say which it is.
  defineKind({ name: 'note', description: 'A note', namespace: ['notes', 'u-{userId}'], schema: content }),
  defineKind({ name: 'todo', description: 'A to-do', namespace: ['notes', 'u-{userId}'], schema: content }),
];

/**
 * A store put that names no kind, under a kinds file without `memory`: the item used to be a
 * `memory` that recall (which reads each kind's own items) never returned, without the kind's TTL.
 */
describe('a store put without a kind', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({ roles: ['api'], runtime: { kinds } });
  });
  afterAll(async () => h?.stop());

  const put = (body: Record<string, unknown>) => send(h, 'PUT', '/v1/store/items', JSON.stringify(body));

  it("is the memory of the one kind whose namespace it writes, with the kind's TTL, and recall finds it", async () => {
    const answer = await put({ namespace: ['facts', 'u14'], key: 'manual', value: { content: 'User likes jazz' } });
    expect(answer.status, JSON.stringify(answer.body)).toBe(200);
    expect(answer.body.item.kind).toBe('fact');
    const left = Date.parse(answer.body.item.expiresAt as string) - Date.now();
    expect(left).toBeGreaterThan(hour - 60_000);
    expect(left).toBeLessThanOrEqual(hour);

    const recalled = await send(
      h,
      'POST',
      '/v1/recall',
      JSON.stringify({ context: { userId: 'u14' }, query: 'User likes jazz' }),
    );
    expect(recalled.status, JSON.stringify(recalled.body)).toBe(200);
    expect(recalled.body.memories.map((m: { key: string }) => m.key)).toEqual(['manual']);
  });

  it("keeps a live item's own kind, and is `memory` outside the kinds' namespaces or where two share one", async () => {
    await put({ namespace: ['facts', 'u15'], key: 'k', kind: 'memory', value: { content: 'a' } });
    const over = await put({ namespace: ['facts', 'u15'], key: 'k', value: { content: 'b' } });
    expect(over.body.item).toMatchObject({ kind: 'memory', version: 2 });

    const elsewhere = await put({ namespace: ['facts', 'u15', 'deeper'], key: 'k', value: { content: 'c' } });
    expect(elsewhere.body.item.kind).toBe('memory');
    const shared = await put({ namespace: ['notes', 'u-15'], key: 'k', value: { content: 'd' } });
    expect(shared.body.item.kind).toBe('memory');
    // A label that only starts like the template's is not the kind's namespace.
    const unlike = await put({ namespace: ['notes', 'x-15'], key: 'k', value: { content: 'e' } });
    expect(unlike.body.item.kind).toBe('memory');
  });

  it("is the kind's memory, with its TTL, through the SDK's store too, from the kinds the service publishes", async () => {
    const engram = sdkClient(h);
    try {
      const item = await engram.store.put(['facts', 'u16'], 'sdk', { content: 'User likes tea' });
      expect(item.kind).toBe('fact');
      // The kind's retention too, from the published kinds.
      const left = (item.expiresAt as Date).getTime() - Date.now();
      expect(left).toBeGreaterThan(hour - 60_000);
      expect(left).toBeLessThanOrEqual(hour);
    } finally {
      await engram.close();
    }
  });
});
