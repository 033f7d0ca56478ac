import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { reflectThread } from '../src/memory/reflect.js';
import type { PgDb } from '../src/store/pool.js';
import { startHarness, type Harness } from './helpers/harness.js';
import { memoryValues } from './helpers/store-state.js';

/**
 * A worker runs far more reflections than it has Postgres connections. When every connection is
 * busy past the pool's wait (5 s) at the moment a reflection commits, the commit is tried again
 * with the model's decision kept: one extraction call per session holds on a busy worker.
 */
describe("a reflection's commit when the pool is busy", () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({ roles: [], env: { DATABASE_POOL_MAX: '1' } });
  });
  afterAll(async () => h?.stop());

  it('waits for a connection and commits without asking the model again', async () => {
    const pool = (h.runtime.db as PgDb).pool;
    let held: Promise<void> | undefined;
    h.model.chat = async () => {
      // While the model "thinks", something else takes the only connection and keeps it past
      // the pool's 5 s wait, so the commit's first try cannot get one.
      const client = await pool.connect();
      held = new Promise((resolve) =>
        setTimeout(() => {
          client.release();
          resolve();
        }, 5_800),
      );
      return { toolCalls: [{ name: 'insert_memory', arguments: { content: 'User keeps bees' } }] };
    };
    await h.runtime.producer.enqueue({
      threadId: 'busy-pool',
      context: { userId: 'bees' },
      messages: [{ role: 'user', content: 'I keep bees' }],
    });
    const outcome = await reflectThread(h.runtime.reflectDeps(), 'busy-pool', { actor: 'test:busy-pool' });
    await held;
    expect(outcome).toMatchObject({ status: 'applied', inserted: 1, modelCalls: 1 });
    expect(h.model.chatRequests).toHaveLength(1);
    expect((await memoryValues(h.runtime, ['memories', 'bees'])).map((m) => m.value.content)).toEqual([
      'User keeps bees',
    ]);
  }, 30_000);
});
