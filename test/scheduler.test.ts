import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { enqueueTick } from '../src/app/scheduler.js';
import { startHarness, waitFor, type Harness } from './helpers/harness.js';

describe('scheduler', () => {
  let h: Harness;
  beforeAll(async () => {
    // Every second, so the test sees real node-cron ticks.
    h = await startHarness({ roles: ['scheduler'], env: { CONSOLIDATION_CRON: '* * * * * *' } });
  });
  afterAll(async () => h?.stop());

  it('replicas ticking at the same scheduled time enqueue one consolidation job', async () => {
    const tick = '2030-01-01T00:00:00.000Z';
    await Promise.all([1, 2, 3].map(() => enqueueTick(h.runtime.queues.consolidation, tick)));
    const jobs = await h.runtime.queues.consolidation.getJobs(['waiting', 'active', 'completed', 'delayed']);
    expect(jobs.filter((j) => j.data.tick === tick)).toHaveLength(1);
  });

  it('cron ticks run consolidation jobs to completion', async () => {
    const fromCron = async () => (await h.runtime.queues.consolidation.getJobs(['completed'])).filter((j) => !j.data.tick.startsWith('2030'));
    const done = await waitFor(async () => ((await fromCron()).length >= 2 ? fromCron() : null), { timeoutMs: 10_000 });
    expect(done.every((j) => j.returnvalue && typeof (j.returnvalue as { expired: number }).expired === 'number')).toBe(true);
  });
});
