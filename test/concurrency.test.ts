import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { RetryableError } from '../src/errors.js';
import { defaultKinds, defineKind } from '../src/memory/kinds.js';
import { reflectThread, type ReflectOutcome } from '../src/memory/reflect.js';
import type { ThreadBuffer } from '../src/queue/buffer.js';
import { readPrompt, type ChatHandler } from './fake-model/server.js';
import { startHarness, type Harness } from './helpers/harness.js';
import { memoryValues, storeState } from './helpers/store-state.js';

/**
 * Invariants 3 and 4 against real Postgres: concurrent threads of one user lose no update and
 * insert no fact twice; a reflection applied once is never applied again, whatever re-runs it.
 */
const travel = defineKind({
  name: 'travel',
  description: 'Cities the user has visited',
  namespace: ['profiles', '{userId}'],
  mode: 'profile',
  schema: z.object({ cities: z.array(z.string()) }),
});

/**
 * A careful model: adds the city of the conversation to the travel profile, and inserts
 * "User loves ramen" only when no memory says so yet. Answers take 0-30 ms, to interleave.
 */
const travellerModel: ChatHandler = (request) => {
  const { profiles, existing, turns } = readPrompt(request);
  const city = /I visited (city-\d+)/.exec(turns.map((t) => t.content).join(' '))?.[1];
  const calls: { name: string; arguments: unknown }[] = [];
  const cities = (profiles.travel?.cities as string[] | undefined) ?? [];
  if (city && !cities.includes(city)) calls.push({ name: 'patch_travel', arguments: { cities: [...cities, city] } });
  if (!existing.some((m) => m.document.content === 'User loves ramen'))
    calls.push({ name: 'insert_memory', arguments: { content: 'User loves ramen' } });
  return { toolCalls: calls, delayMs: Math.floor(Math.random() * 30) };
};

describe('concurrent reflections of one user', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({ roles: [], chat: travellerModel, runtime: { kinds: [defaultKinds[0]!, travel] } });
  });
  afterAll(async () => h?.stop());

  const say = (threadId: string, content: string) =>
    h.runtime.producer.enqueue({ threadId, context: { userId: 'u1' }, messages: [{ role: 'user', content }] });
  /** A job: reflectThread, retried on RetryableError as BullMQ would (a bounded number of attempts). */
  async function job(threadId: string, attempts = 30): Promise<ReflectOutcome> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await reflectThread(h.runtime.reflectDeps(), threadId, { actor: `job:${threadId}:${attempt}` });
      } catch (err) {
        if (!(err instanceof RetryableError) || attempt >= attempts) throw err;
        await new Promise((r) => setTimeout(r, Math.random() * 20));
      }
    }
  }

  it('20 threads at once: every city kept, ramen stored once, history a single chain', async () => {
    const threads = Array.from({ length: 20 }, (_, i) => `trip-${i}`);
    await Promise.all(threads.map((t, i) => say(t, `I visited city-${i}. I love ramen!`)));
    const outcomes = await Promise.all(threads.map((t) => job(t)));
    expect(outcomes.every((o) => o.status === 'applied' && o.turns === 1)).toBe(true);

    const profile = await memoryValues(h.runtime, ['profiles', 'u1']);
    expect(profile).toHaveLength(1);
    expect([...(profile[0]!.value.cities as string[])].sort()).toEqual(threads.map((_, i) => `city-${i}`).sort());
    expect(await memoryValues(h.runtime, ['memories', 'u1'])).toEqual([
      { kind: 'memory', value: { content: 'User loves ramen' } },
    ]);

    const state = await storeState(h.runtime);
    const ramen = state.history.filter((r) => r.namespace[0] === 'memories');
    expect(ramen.map((r) => r.op)).toEqual(['insert']);
    // The profile's history is one chain: each change starts from the previous one's result,
    // so no commit overwrote another (a lost update would break the chain).
    const chain = state.history.filter((r) => r.namespace[0] === 'profiles');
    expect(chain.map((r) => r.op)).toEqual(['insert', ...Array(19).fill('update')]);
    chain.forEach((row, i) => {
      expect(row.version).toBe(i + 1);
      if (i > 0) expect(row.before).toEqual(chain[i - 1]!.after);
      expect((row.after?.cities as string[]).length).toBe(i + 1);
    });
    expect(state.cursors.map((c) => c.thread_id).sort()).toEqual([...threads].sort());
    const restarts = outcomes.reduce((n, o) => n + o.restarts, 0);
    // Conflicts happened and were resolved by re-running with fresh memories, not by luck.
    expect(restarts).toBeGreaterThan(0);
  });

  it('a job run again after its commit applies nothing, and calls no model', async () => {
    await say('again-1', 'I visited city-100');
    expect(await job('again-1')).toMatchObject({ status: 'applied', turns: 1 });
    const before = await storeState(h.runtime);
    const calls = h.model.chatRequests.length;
    expect(await job('again-1')).toMatchObject({ status: 'nothing-pending', modelCalls: 0 });
    expect(h.model.chatRequests.length).toBe(calls);
    expect(await storeState(h.runtime)).toEqual(before);
  });

  it('a job that committed but died before trimming the buffer applies nothing on its retry', async () => {
    await say('crash-1', 'I visited city-200');
    const deps = h.runtime.reflectDeps();
    // The process dies between the commit and the trim: the trim never runs.
    const dying = Object.create(deps.buffer) as ThreadBuffer;
    dying.trim = async () => false;
    expect(await reflectThread({ ...deps, buffer: dying }, 'crash-1', { actor: 'job:crash-1:1' })).toMatchObject({
      status: 'applied',
    });
    expect(
      (await h.runtime.buffer.of('crash-1').dueCeilings(Number.MAX_SAFE_INTEGER, 1000)).some(
        (d) => d.threadId === 'crash-1',
      ),
    ).toBe(true);
    const before = await storeState(h.runtime);
    expect(await job('crash-1')).toMatchObject({ status: 'nothing-pending', modelCalls: 0 });
    expect(await storeState(h.runtime)).toEqual(before);
    expect(
      (await h.runtime.buffer.of('crash-1').dueCeilings(Number.MAX_SAFE_INTEGER, 1000)).some(
        (d) => d.threadId === 'crash-1',
      ),
    ).toBe(false);
  });

  it('two deliveries of one job at once: the second finds the cursor moved and applies nothing', async () => {
    await say('dup-1', 'I visited city-300. I love ramen!');
    const before = await storeState(h.runtime);
    // The first delivery pauses right before its commit until the second has read the same
    // cursor and turns and asked the model; then the first commits, and only then does the
    // second try to commit: it meets a moved cursor.
    let second: Promise<ReflectOutcome> | null = null;
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    let secondAtCommit!: () => void;
    const secondReady = new Promise<void>((r) => (secondAtCommit = r));
    const first = reflectThread(h.runtime.reflectDeps(), 'dup-1', {
      actor: 'delivery-1',
      beforeCommit: async () => {
        second ??= reflectThread(h.runtime.reflectDeps(), 'dup-1', {
          actor: 'delivery-2',
          beforeCommit: async () => {
            secondAtCommit();
            await released;
          },
        });
        await secondReady;
      },
    });
    expect(await first).toMatchObject({ status: 'applied', turns: 1 });
    release();
    const dup = await (second as unknown as Promise<ReflectOutcome>);
    expect(dup).toMatchObject({ status: 'nothing-pending', inserted: 0, updated: 0, deleted: 0 });
    expect(dup.restarts).toBe(1);

    const after = await storeState(h.runtime);
    const newRows = after.history.slice(before.history.length);
    expect(newRows.map((r) => [r.op, r.actor])).toEqual([['update', 'delivery-1']]);
  });
});

/**
 * A conflict re-reads the memories; when the model would see exactly the same ones, its answer
 * stands and only the commit is retried (no second model call). When the other thread's commit
 * is relevant, the model runs again with it.
 */
describe('conflicts between unrelated and related threads', () => {
  let h: Harness;
  /** Inserts what the user says, unless a memory already says it. */
  const echoModel: ChatHandler = (request) => {
    const { existing, turns } = readPrompt(request);
    const said = turns.map((t) => t.content).join(' ');
    return existing.some((m) => m.document.content === said)
      ? { content: 'no changes' }
      : { toolCalls: [{ name: 'insert_memory', arguments: { content: said } }] };
  };
  beforeAll(async () => {
    h = await startHarness({ roles: [], chat: echoModel, env: { EXISTING_TOP_K: '2' } });
    const seed = [
      'User plays tennis on Sundays',
      'User plays tennis with Bob',
      'User loves ramen',
      'User loves ramen with egg',
    ];
    for (const [i, content] of seed.entries()) {
      await h.runtime.producer.enqueue({
        threadId: `seed-${i}`,
        context: { userId: 'u1' },
        messages: [{ role: 'user', content }],
      });
      await reflectThread(h.runtime.reflectDeps(), `seed-${i}`, { actor: 'seed' });
    }
  });
  afterAll(async () => h?.stop());

  /** Runs `late` up to its commit, lets `early` commit in between, then lets `late` commit. */
  async function interleave(earlySays: string, lateSays: string) {
    const early = `early-${h.model.chatRequests.length}`;
    const late = `late-${h.model.chatRequests.length}`;
    await h.runtime.producer.enqueue({
      threadId: early,
      context: { userId: 'u1' },
      messages: [{ role: 'user', content: earlySays }],
    });
    await h.runtime.producer.enqueue({
      threadId: late,
      context: { userId: 'u1' },
      messages: [{ role: 'user', content: lateSays }],
    });
    let lateAtCommit!: () => void;
    const lateReady = new Promise<void>((r) => (lateAtCommit = r));
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    let paused = false;
    const lateRun = reflectThread(h.runtime.reflectDeps(), late, {
      actor: late,
      beforeCommit: async () => {
        if (paused) return;
        paused = true;
        lateAtCommit();
        await released;
      },
    });
    await lateReady;
    expect(await reflectThread(h.runtime.reflectDeps(), early, { actor: early })).toMatchObject({
      status: 'applied',
      inserted: 1,
    });
    release();
    return lateRun;
  }

  it('an unrelated commit: the answer stands, one model call', async () => {
    const calls = h.model.chatRequests.length;
    const outcome = await interleave('User loves ramen with miso', 'User plays tennis at the club');
    expect(outcome).toMatchObject({ status: 'applied', inserted: 1, restarts: 1, rebased: 1, modelCalls: 1 });
    expect(h.model.chatRequests.length - calls).toBe(2);
  });

  it('a related commit: the model runs again and sees it, and nothing is inserted twice', async () => {
    const outcome = await interleave('User plays chess', 'User plays chess');
    expect(outcome).toMatchObject({ status: 'applied', inserted: 0, restarts: 1, rebased: 0, modelCalls: 2 });
    const chess = (await memoryValues(h.runtime, ['memories', 'u1'])).filter(
      (m) => m.value.content === 'User plays chess',
    );
    expect(chess).toHaveLength(1);
  });
});
