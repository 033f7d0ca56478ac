import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { enqueueTick } from '../src/app/scheduler.js';
import type { ConsolidationOutcome } from '../src/memory/consolidate.js';
import { startHarness, waitFor, type Harness } from './helpers/harness.js';
import { memoryValues } from './helpers/store-state.js';

describe('scheduler', () => {
  let h: Harness;
  beforeAll(async () => {
    // Every second, so the test sees real node-cron ticks.
    h = await startHarness({
      roles: ['scheduler'],
      // No retries: a namespace's merge fails at its first 429.
      env: { CONSOLIDATION_CRON: '* * * * * *', CONSOLIDATION_MERGE_DISTANCE: '0.25', LLM_MAX_RETRIES: '0' },
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

  const mergeBoth = () => ({
    toolCalls: [
      { name: 'update_memory', arguments: { id: 'm1', document: { content: 'User really loves ramen' } } },
      { name: 'delete_memory', arguments: { id: 'm2' } },
    ],
  });
  const putPair = async (user: string) => {
    await h.runtime.storeApi.put({ namespace: ['memories', user], key: 'k1', value: { content: 'User loves ramen' } });
    await h.runtime.storeApi.put({
      namespace: ['memories', user],
      key: 'k2',
      value: { content: 'User really loves ramen' },
    });
  };

  it('a tick merges near-duplicates the model confirms', async () => {
    h.model.chat = mergeBoth;
    await putPair('u1');
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

  it('stops a pass when the model refuses everyone, and merges the namespaces left once it takes requests', async () => {
    const users = ['u2', 'u3', 'u4'];
    const passes = async () =>
      (await h.runtime.queues.consolidation.getJobs(['completed']))
        .map((j) => j.returnvalue as ConsolidationOutcome | undefined)
        .filter((o): o is ConsolidationOutcome => o?.stopped !== undefined);
    // Every request refused for a rate limit, the one-token probe too: a limit on everyone.
    h.model.chat = () => ({ status: 429, error: 'Rate limit reached for requests', code: 'rate_limit_exceeded' });
    for (const user of users) await putPair(user);
    const [stopped] = await waitFor(async () => ((await passes()).length ? passes() : null), { timeoutMs: 10_000 });
    // The first namespace's 429 and its probe's: the other two were not asked about at all.
    expect(stopped).toMatchObject({
      namespaces: 1,
      failed: 1,
      stopped: { dependency: 'chat-model', reason: 'rate-limited' },
    });
    const counted = await h.runtime.metrics.consolidationStopped.get();
    expect(counted.values.find((v) => v.labels.dependency === 'chat-model')?.value).toBeGreaterThanOrEqual(1);
    // Nothing was marked: once the provider takes requests, a later tick merges all three.
    h.model.chat = mergeBoth;
    for (const user of users)
      await waitFor(async () => (await memoryValues(h.runtime, ['memories', user])).length === 1, {
        timeoutMs: 10_000,
      });
  });

  it('counts what a pass did when it fails part way', async () => {
    const mergedSoFar = async () => (await h.runtime.metrics.consolidatedMerged.get()).values[0]?.value ?? 0;
    // A pass of the test before may still be running: its merges are counted when it ends, which
    // read after \`before\` made this pass's count look like two merges.
    await waitFor(async () => (await h.runtime.queues.consolidation.getActiveCount()) === 0, { timeoutMs: 10_000 });
    const before = await mergedSoFar();
    // Two namespaces in one transaction, so that one pass finds both: the first merges, the
    // second's request is refused for its key, which fails the pass (a setup error) after the
    // first one's merge committed.
    let requests = 0;
    h.model.chat = () => (requests++ === 0 ? mergeBoth() : { status: 401, error: 'invalid api key' });
    await h.runtime.storeApi.batch(
      ['u5', 'u6'].flatMap((user) =>
        [
          ['k1', 'User loves ramen'],
          ['k2', 'User really loves ramen'],
        ].map(([key, content]) => ({ op: 'put', namespace: ['memories', user], key, value: { content } })),
      ),
    );
    await waitFor(async () => requests > 1, { timeoutMs: 10_000 });
    const left = async () =>
      (await memoryValues(h.runtime, ['memories', 'u5'])).length +
      (await memoryValues(h.runtime, ['memories', 'u6'])).length;
    expect(await left()).toBe(3);
    // The merge is counted although its pass failed.
    await waitFor(async () => (await mergedSoFar()) === before + 1, { timeoutMs: 5_000 });
  });
});
