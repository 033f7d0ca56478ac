import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { reflectionCounts, startHarness, TEST_DATABASE_URL, waitFor, type Harness } from './helpers/harness.js';
import { StallProxy } from './helpers/stall-proxy.js';
import { memoryValues } from './helpers/store-state.js';

/**
 * Postgres away for longer than a reflection's attempts last: the threads due meanwhile used to
 * spend every attempt in a second and park, reflected again only by an operator's retry or the
 * user's next turn. Now the worker hands each job back without spending an attempt, takes no
 * reflection while Postgres is away, and reflects them once it answers, each with one model call.
 */
describe('a Postgres outage longer than the attempts', () => {
  const proxy = new StallProxy(new URL(TEST_DATABASE_URL));
  let port: number;
  let h: Harness;
  beforeAll(async () => {
    const url = await proxy.start();
    port = Number(new URL(url).port);
    h = await startHarness({
      roles: ['reflection'],
      // Two attempts 20 ms apart: without the hold, both are spent within the outage below.
      env: { DATABASE_URL: url, DEBOUNCE_MS: '50', REFLECTION_ATTEMPTS: '2', REFLECTION_BACKOFF_MS: '20' },
      runtime: { outagePollMs: 100 },
      chat: () => ({ toolCalls: [{ name: 'insert_memory', arguments: { content: 'User likes tea' } }] }),
    });
  });
  afterAll(async () => {
    if (!proxy.listening) await proxy.start(port);
    await h?.stop();
    await proxy.stop();
  });

  it('hands the jobs back without spending attempts, and reflects them once Postgres answers', async () => {
    await proxy.stop();
    const users = ['u1', 'u2', 'u3'];
    for (const user of users)
      await h.runtime.producer.enqueue({
        threadId: `t-${user}`,
        context: { userId: user },
        messages: [{ role: 'user', content: 'I like tea' }],
      });
    // Every job has run at least once against the outage, and been handed back.
    await waitFor(async () => (await handedBack()) >= users.length);
    await new Promise((r) => setTimeout(r, 1_000));
    expect(await reflectionCounts(h.runtime, 'failed')).toEqual({ failed: 0 });
    expect((await h.runtime.buffer.parked(10)).count).toBe(0);
    expect(h.model.chatRequests).toHaveLength(0);

    await proxy.start(port);
    for (const user of users)
      await waitFor(async () => (await memoryValues(h.runtime, ['memories', user])).length === 1, {
        timeoutMs: 20_000,
      });
    expect(h.model.chatRequests).toHaveLength(users.length);
    expect(await reflectionCounts(h.runtime, 'failed')).toEqual({ failed: 0 });
    expect((await h.runtime.buffer.parked(10)).count).toBe(0);
  });

  /** engram_reflections_total{status="handed-back"}, as /metrics would show it. */
  async function handedBack(): Promise<number> {
    const text = await h.runtime.metrics.registry.metrics();
    return Number(/^engram_reflections_total\{status="handed-back"\} (\d+)$/m.exec(text)?.[1] ?? 0);
  }
});
