import { afterEach, describe, expect, it } from 'vitest';
import { Runtime } from '../src/app/runtime.js';
import { parseEnv } from '../src/config/env.js';
import { createLogger } from '../src/observability/logger.js';
import { FakeModel, readPrompt, type ChatHandler } from './fake-model/server.js';
import { cleanup, reflectionCounts, reflectionJobs, testEnvVars, threadQueue, waitFor } from './helpers/harness.js';
import { killAll, spawnWorker, type WorkerProcess } from './helpers/processes.js';
import { tables } from '../src/store/sql.js';
import { jobs } from './helpers/jobs-cli.js';

/** Remembers every user turn verbatim: the store then shows which turns were applied, and how often. */
const recordAll: ChatHandler = (request) => ({
  toolCalls: readPrompt(request)
    .turns.filter((t) => t.role === 'user')
    .map((t) => ({ name: 'insert_memory', arguments: { content: t.content } })),
});
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Workers in separate processes, killed and stopped for real. The test process is the producer
 * and the observer (store, queue); the fake model runs here too, so it sees every reflection.
 */
describe('reflection workers in several processes', () => {
  let model: FakeModel;
  let vars: Record<string, string>;
  let observer: Runtime;
  let workers: WorkerProcess[] = [];

  async function setup(chat: ChatHandler, overrides: Record<string, string> = {}) {
    model = await new FakeModel(chat).start();
    vars = testEnvVars(model.url, { DEBOUNCE_MS: '100', WORKER_LOCK_MS: '1000', ...overrides });
    observer = new Runtime(parseEnv(vars), createLogger({ level: 'silent' }));
    await observer.migrate();
    await observer.start([]);
  }
  const worker = async (failpoint?: string) => {
    const w = spawnWorker(vars, failpoint);
    workers.push(w);
    await w.waitForLine(/^ready$/);
    return w;
  };
  const send = (threadId: string, content: string) =>
    observer.producer.enqueue({
      threadId,
      context: { userId: 'u1' },
      messages: [{ id: `${threadId}-${content.replace(/\W+/g, '_')}`, role: 'user', content }],
    });
  const inserts = async (content: string) => {
    const res = await observer.db.query<{ n: number }>(
      `select count(*)::int as n from ${tables(observer.store.schema).history} where op = 'insert' and after->>'content' = $1`,
      [content],
    );
    return res.rows[0]!.n;
  };
  const settled = async () => {
    const c = await reflectionCounts(observer, 'delayed', 'waiting', 'active', 'failed');
    return (c.delayed ?? 0) + (c.waiting ?? 0) + (c.active ?? 0) === 0 ? c : null;
  };

  afterEach(async () => {
    await killAll(workers);
    workers = [];
    await observer?.stop();
    await model?.stop();
    if (vars) await cleanup(parseEnv(vars));
  });

  it('a worker SIGKILLed right before its commit: the turns are reflected by another, once', async () => {
    await setup(recordAll);
    const doomed = await worker('hang-before-commit');
    await send('k1', 'I live in Porto');
    await doomed.waitForLine(/^about-to-commit k1$/);
    doomed.child.kill('SIGKILL');
    await doomed.exited;
    expect(await observer.store.cursor('k1')).toBeNull();

    await worker(); // takes the stalled job over once its lock expires
    await waitFor(async () => (await observer.store.cursor('k1')) && (await settled()), { timeoutMs: 30_000 });
    expect(await inserts('I live in Porto')).toBe(1);
    expect(model.chatRequests).toHaveLength(2); // the killed attempt's call, and the one that committed
  });

  it('a worker SIGKILLed right after its commit: the re-run applies nothing', async () => {
    await setup(recordAll);
    const doomed = await worker('hang-after-commit');
    await send('k2', 'I play the cello');
    await doomed.waitForLine(/^committed k2$/);
    doomed.child.kill('SIGKILL');
    await doomed.exited;
    const cursor = await observer.store.cursor('k2');
    expect(cursor).not.toBeNull();

    await worker();
    const counts = await waitFor(settled, { timeoutMs: 30_000 });
    expect(counts.failed).toBe(0);
    expect(await observer.store.cursor('k2')).toBe(cursor);
    expect(await inserts('I play the cello')).toBe(1);
    expect(model.chatRequests).toHaveLength(1); // the re-run found nothing after the cursor
    const left = await observer.buffer.read('k2', cursor, 10, 0);
    expect(left.pending).toEqual([]);
  });

  it('a worker SIGKILLed three times under one job: each stall is a failed attempt with backoff, and the thread still reflects', async () => {
    // Three stalls used to fail the job unrun (maxStalledCount 2) and park the thread until an
    // operator retried it, whatever REFLECTION_ATTEMPTS said.
    await setup(recordAll, { REFLECTION_ATTEMPTS: '5', REFLECTION_BACKOFF_MS: '100' });
    await send('k3', 'I keep bees');
    for (let kill = 1; kill <= 3; kill++) {
      const doomed = await worker('hang-before-commit');
      await doomed.waitForLine(/^about-to-commit k3$/, 30_000);
      doomed.child.kill('SIGKILL');
      await doomed.exited;
    }
    await worker();
    await waitFor(async () => (await observer.store.cursor('k3')) && (await settled()), { timeoutMs: 30_000 });
    expect(await inserts('I keep bees')).toBe(1);
    // The job that committed (a follow-up the sweeper asked for meanwhile found nothing left).
    const job = (await reflectionJobs(observer, ['completed'])).find(
      (j) => (j.returnvalue as { status?: string }).status === 'applied',
    );
    // Three stalls counted as three failed attempts, then the run that committed.
    expect([job?.attemptsMade, job?.stalledCounter]).toEqual([4, 3]);
    expect((await threadQueue(observer, 'k3').getJobLogs(job!.id!)).logs).toEqual([
      expect.stringMatching(/previous run stalled .*1 stall\(s\) so far/),
      expect.stringMatching(/2 stall\(s\) so far/),
      expect.stringMatching(/3 stall\(s\) so far/),
    ]);
    expect((await observer.buffer.parked(10)).count).toBe(0);
  });

  it('a poison job (its worker dies every run) fails after its attempts, and its thread shows as parked', async () => {
    await setup(recordAll, { REFLECTION_ATTEMPTS: '2', REFLECTION_BACKOFF_MS: '100' });
    await send('poison', 'I break workers');
    for (let kill = 1; kill <= 2; kill++) {
      const doomed = await worker('hang-before-commit');
      await doomed.waitForLine(/^about-to-commit poison$/, 30_000);
      doomed.child.kill('SIGKILL');
      await doomed.exited;
    }
    await worker('hang-before-commit'); // takes it, counts the second stall: no attempt left
    const failed = await waitFor(async () => (await reflectionJobs(observer, ['failed']))[0]);
    expect([failed.attemptsMade, failed.failedReason]).toEqual([2, expect.stringMatching(/previous run stalled/)]);
    const parked = await waitFor(async () => (await observer.buffer.parked(10)).threads[0]);
    expect(parked.threadId).toBe('poison');
    expect(await observer.metrics.registry.getSingleMetricAsString('engram_parked_threads')).toMatch(
      /^engram_parked_threads 1$/m,
    );
    const cli = await jobs(['failed'], vars);
    expect(cli, cli.stderr).toMatchObject({ code: 0 });
    expect(JSON.parse(cli.stdout.trim())).toMatchObject({
      data: { threadId: 'poison' },
      attempts: 2,
      reason: expect.stringMatching(/previous run stalled/),
    });
    const listed = await jobs(['parked'], vars);
    expect(listed, listed.stderr).toMatchObject({ code: 0 });
    expect(JSON.parse(listed.stdout.trim())).toMatchObject({ threadId: 'poison' });
    const counted = await jobs(['counts'], vars);
    expect(counted, counted.stderr).toMatchObject({ code: 0 });
    const counts = counted.stdout.trim().split('\n').at(-1) ?? '';
    expect(JSON.parse(counts)).toEqual({ pendingThreads: 0, parkedThreads: 1 });
    expect(await observer.store.cursor('poison')).toBeNull(); // nothing committed; the turn is kept
    expect((await observer.buffer.read('poison', null, 10, 0)).pending.map((e) => e.turn.content)).toEqual([
      'I break workers',
    ]);
  });

  it('two worker processes, many threads: never two reflections of one thread at once, every turn applied once', async () => {
    const inFlight = new Map<string, number>();
    let overlaps = 0;
    await setup(
      async (request, n) => {
        const thread = /^\[(\w+)\]/.exec(readPrompt(request).turns[0]?.content ?? '')?.[1] ?? '?';
        const now = (inFlight.get(thread) ?? 0) + 1;
        inFlight.set(thread, now);
        if (now > 1) overlaps++;
        await sleep(80);
        inFlight.set(thread, (inFlight.get(thread) ?? 1) - 1);
        return recordAll(request, n);
      },
      { REFLECTION_CONCURRENCY: '8' },
    );
    await Promise.all([worker(), worker()]);
    const threads = Array.from({ length: 12 }, (_, i) => `th${i}`);
    const sent: string[] = [];
    for (let round = 0; round < 4; round++) {
      for (const t of threads) {
        const content = `[${t}] fact ${round}`;
        sent.push(content);
        await send(t, content);
        // Extra jobs for the same thread, as a stalled re-run or an operator's retry would make:
        // BullMQ's deduplication does not cover them, the thread lease must.
        if (round % 2 === 1) await threadQueue(observer, t).add('reflect', { threadId: t });
      }
      await sleep(150);
    }
    await waitFor(async () => (await Promise.all(sent.map(inserts))).every((n) => n >= 1) && (await settled()), {
      timeoutMs: 60_000,
    });
    expect(overlaps).toBe(0);
    expect(await Promise.all(sent.map(inserts))).toEqual(sent.map(() => 1));
  });

  it.each([
    ['rollback', [['first', 'second']]],
    ['enqueue', [['first'], ['second']]],
  ] as const)(
    'policy %s with the producer and the running reflection in different processes',
    async (policy, committed) => {
      let release: () => void = () => undefined;
      await setup(
        async (request, n) => {
          if (n === 0) await new Promise<void>((r) => (release = r));
          return recordAll(request, n);
        },
        { REFLECTION_POLICY: policy },
      );
      await Promise.all([worker(), worker()]);
      await send('pol', 'first');
      await waitFor(() => model.chatRequests.length === 1);
      await send('pol', 'second');
      await sleep(800); // lease heartbeats (every ~333 ms) see the new turn
      release();
      await waitFor(async () => (await inserts('second')) === 1 && (await settled()), { timeoutMs: 30_000 });
      const actors = await observer.db.query(
        `select actor, array_agg(after->>'content' order by after->>'content') as contents from ${tables(observer.store.schema).history} group by actor order by min(id)`,
      );
      expect(actors.rows.map((r) => r.contents)).toEqual(committed);
    },
  );

  it('SIGTERM lets the active reflection finish before the process exits', async () => {
    let release: () => void = () => undefined;
    await setup(async (request, n) => {
      if (n === 0) await new Promise<void>((r) => (release = r));
      return recordAll(request, n);
    });
    const w = await worker();
    await send('term', 'I speak Portuguese');
    await waitFor(() => model.chatRequests.length === 1);
    w.child.kill('SIGTERM');
    await sleep(300);
    expect(w.child.exitCode).toBeNull(); // still draining
    release();
    expect(await w.exited).toBe(0);
    expect(await inserts('I speak Portuguese')).toBe(1);
    expect(await settled()).toBeTruthy();
  });

  it('SIGTERM past the grace period aborts the reflection and hands the job back for another worker', async () => {
    await setup(
      async (request, n) => {
        if (n === 0) await sleep(60_000); // a model that hangs; the abort must reach the request
        return recordAll(request, n);
      },
      { SHUTDOWN_GRACE_MS: '300' },
    );
    const w = await worker();
    await send('slow', 'I run marathons');
    await waitFor(() => model.chatRequests.length === 1);
    w.child.kill('SIGTERM');
    expect(await w.exited).toBe(0);
    await worker();
    await waitFor(async () => (await inserts('I run marathons')) === 1 && (await settled()), { timeoutMs: 30_000 });
    const [job] = await reflectionJobs(observer, ['completed']);
    expect(job?.attemptsMade).toBe(1); // the hand-back spent no attempt
  });
});
