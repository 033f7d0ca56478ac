import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { enqueueTick } from '../src/app/scheduler.js';
import { startHarness, waitFor, type Harness } from './helpers/harness.js';
import { memoryValues } from './helpers/store-state.js';

describe('scheduler', () => {
  let h: Harness;
  beforeAll(async () => {
    // Every second, so the test sees real node-cron ticks.
    h = await startHarness({
      roles: ['scheduler'],
      env: { CONSOLIDATION_CRON: '* * * * * *', CONSOLIDATION_MERGE_DISTANCE: '0.25' },
    });
  });
  afterAll(async () => h?.stop());

  it('replicas ticking at the same scheduled time enqueue one consolidation job', async () => {
    const tick = '2030-01-01T00:00:00.000Z';
    await Promise.all([1, 2, 3].map(() => enqueueTick(h.runtime.queues.consolidation, tick)));
    const jobs = await h.runtime.queues.consolidation.getJobs(['waiting', 'active', 'completed', 'delayed']);
    expect(jobs.filter((j) => j.data.tick === tick)).toHaveLength(1);
  });

  it('cron ticks run consolidation jobs to completion', async () => {
    const fromCron = async () =>
      (await h.runtime.queues.consolidation.getJobs(['completed'])).filter((j) => !j.data.tick.startsWith('2030'));
    const done = await waitFor(async () => ((await fromCron()).length >= 2 ? fromCron() : null), { timeoutMs: 10_000 });
    expect(done.every((j) => j.returnvalue && typeof (j.returnvalue as { expired: number }).expired === 'number')).toBe(
      true,
    );
  });

  it('a tick merges near-duplicates the model confirms', async () => {
    h.model.chat = () => ({
      toolCalls: [
        { name: 'update_memory', arguments: { id: 'm1', document: { content: 'User really loves ramen' } } },
        { name: 'delete_memory', arguments: { id: 'm2' } },
      ],
    });
    await h.runtime.storeApi.put({ namespace: ['memories', 'u1'], key: 'k1', value: { content: 'User loves ramen' } });
    await h.runtime.storeApi.put({
      namespace: ['memories', 'u1'],
      key: 'k2',
      value: { content: 'User really loves ramen' },
    });
    const left = await waitFor(
      async () => {
        const rows = await memoryValues(h.runtime, ['memories', 'u1']);
        return rows.length === 1 ? rows : null;
      },
      { timeoutMs: 10_000 },
    );
    expect(left.map((r) => r.value.content)).toEqual(['User really loves ramen']);
    // The counter moves after the merge's transaction commits, so the rows can be seen first.
    const merged = await waitFor(
      async () => {
        const metric = await h.runtime.metrics.consolidatedMerged.get();
        return metric.values.some((v) => v.value > 0) ? metric : null;
      },
      { timeoutMs: 5_000 },
    );
    expect(merged).toMatchObject({ values: [{ value: 1 }] });
  });
});
