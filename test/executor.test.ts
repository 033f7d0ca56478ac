import { execFile } from 'node:child_process';
import { Agent, get } from 'node:http';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it, onTestFinished } from 'vitest';
import { z } from 'zod';
import { defineKind } from '../src/memory/kinds.js';
import { createLogger } from '../src/observability/logger.js';
import { createRedis, waitReady } from '../src/queue/connection.js';
import { Producer } from '../src/queue/enqueue.js';
import { createQueues, everyQueue } from '../src/queue/queues.js';
import { EngramClient } from '../src/sdk/client.js';
import { readPrompt, type ChatHandler } from './fake-model/server.js';
import {
  reflectionCounts,
  reflectionJobs,
  startHarness,
  TEST_REDIS_SHARDS,
  threadJob,
  threadQueue,
  waitFor,
  type Harness,
} from './helpers/harness.js';

/** Remembers every user turn verbatim, so the store shows which turns each reflection saw. */
const recordAll: ChatHandler = (request) => {
  const { turns } = readPrompt(request);
  return {
    toolCalls: turns
      .filter((t) => t.role === 'user')
      .map((t) => ({ name: 'insert_memory', arguments: { content: t.content } })),
  };
};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('debounced reflection executor', () => {
  let h: Harness | undefined;
  afterEach(async () => {
    await h?.stop();
    h = undefined;
  });

  const send = (threadId: string, content: string, extra: Record<string, unknown> = {}) =>
    h!.runtime.producer.enqueue({
      threadId,
      context: { userId: 'u1' },
      messages: [{ role: 'user', content }],
      ...extra,
    });
  const reflections = () => h!.model.chatRequests.map((r) => readPrompt(r).turns.map((t) => t.content));
  const drained = async () => {
    const c = await reflectionCounts(h!.runtime, 'delayed', 'waiting', 'active');
    return (c.delayed ?? 0) + (c.waiting ?? 0) + (c.active ?? 0) === 0;
  };

  it('turns within the quiet window coalesce into one reflection that sees all of them', async () => {
    h = await startHarness({
      roles: ['reflection'],
      chat: recordAll,
      env: { DEBOUNCE_MS: '400', MAX_WAIT_MS: '10000' },
    });
    for (let i = 1; i <= 8; i++) {
      await send('burst', `turn ${i}`);
      await sleep(50);
    }
    await waitFor(async () => h!.model.chatRequests.length === 1 && (await drained()));
    await sleep(600); // a second reflection would have started by now
    expect(reflections()).toEqual([Array.from({ length: 8 }, (_, i) => `turn ${i + 1}`)]);
  });

  it('a worker process without the API serves its own metrics on METRICS_PORT', async () => {
    // Without a deprecation on stderr (Fastify's FSTDEP warnings), which operators take for a fault.
    const warnings: string[] = [];
    const onWarning = (w: Error & { code?: string }) => warnings.push(`${w.code ?? w.name}: ${w.message}`);
    process.on('warning', onWarning);
    onTestFinished(() => void process.off('warning', onWarning));
    h = await startHarness({ roles: ['reflection'], chat: recordAll, env: { DEBOUNCE_MS: '100', METRICS_PORT: '0' } });
    const address = h.runtime.metricsServer?.server.address();
    const port = address && typeof address === 'object' ? address.port : 0;
    await send('metered', 'I play the cello');
    await waitFor(async () => h!.model.chatRequests.length === 1 && (await drained()));
    const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    expect(text).toMatch(/^engram_reflections_total\{status="applied"\} 1$/m);
    expect(text).toMatch(/^engram_memory_writes_total\{op="insert"\} 1$/m);
    expect(warnings.filter((w) => w.startsWith('FSTDEP'))).toEqual([]);
    // What it does not serve is answered as the API answers it: `{ error }`, 405 for a wrong method.
    const unknown = await fetch(`http://127.0.0.1:${port}/nope`);
    expect([unknown.status, await unknown.json()]).toEqual([404, { error: 'no route GET /nope' }]);
    const posted = await fetch(`http://127.0.0.1:${port}/metrics`, { method: 'POST' });
    expect([posted.status, posted.headers.get('allow')]).toEqual([405, 'GET, HEAD']);
  });

  it('a kind may set its own quiet window; a call may override it', async () => {
    const kind = (name: string, debounceMs?: number) =>
      defineKind({
        name,
        description: name,
        namespace: ['memories', '{userId}'],
        schema: z.object({ content: z.string() }),
        ...(debounceMs === undefined ? {} : { debounceMs }),
      });
    h = await startHarness({
      roles: ['reflection'],
      chat: () => ({ content: 'no changes' }),
      env: { DEBOUNCE_MS: '60000', MAX_WAIT_MS: '600000' },
      runtime: { kinds: [kind('memory', 150), kind('slow')] },
    });
    await send('fast-kind', 'hello', { kinds: ['memory'] });
    await send('slow-kind', 'hello', { kinds: ['slow'] });
    await send('slow-call', 'hello', { kinds: ['slow'], debounceMs: 150 });
    await waitFor(() => h!.model.chatRequests.length === 2);
    await sleep(500);
    expect(h.model.chatRequests).toHaveLength(2);
    expect(await h.runtime.store.cursor('fast-kind')).not.toBeNull();
    expect(await h.runtime.store.cursor('slow-call')).not.toBeNull();
    expect(await h.runtime.store.cursor('slow-kind')).toBeNull(); // waits for DEBOUNCE_MS
  });

  it('turns whose job add failed are still accepted, and reflected once their ceiling passes', async () => {
    h = await startHarness({ roles: ['reflection'], chat: recordAll, env: { DEBOUNCE_MS: '100', MAX_WAIT_MS: '800' } });
    // A producer whose queue connection is gone (a real failure, no stub): the append succeeds
    // on the buffer's connection, the BullMQ add fails.
    const dead = createRedis(h.env.REDIS_URL!, 'producer', createLogger({ level: 'silent' }));
    await waitReady(dead);
    await dead.quit();
    const queues = createQueues(
      dead,
      { prefix: h.env.ENGRAM_PREFIX, shards: h.env.REDIS_SHARDS, reflectionAttempts: 1, reflectionBackoffMs: 5_000 },
      createLogger({ level: 'silent' }),
    );
    onTestFinished(() =>
      Promise.all(everyQueue(queues).map((q) => q.close().catch(() => undefined))).then(() => undefined),
    );
    const producer = new Producer(
      h.runtime.buffer,
      queues.reflection,
      { debounceMs: 100, maxWaitMs: 800, policy: 'enqueue', kinds: h.runtime.kinds, timeoutMs: 5_000 },
      createLogger({ level: 'silent' }),
    );
    expect(
      await producer.enqueue({
        threadId: 'orphan',
        context: { userId: 'u1' },
        messages: [{ role: 'user', content: 'I collect stamps' }],
      }),
    ).toMatchObject({ accepted: 1 });
    expect(await reflectionCounts(h.runtime, 'delayed', 'waiting')).toEqual({ delayed: 0, waiting: 0 });
    await waitFor(async () => (await h!.runtime.store.cursor('orphan')) !== null);
    expect(reflections()).toEqual([['I collect stamps']]);
  });

  it('bursts further apart than the window reflect once per burst', async () => {
    h = await startHarness({
      roles: ['reflection'],
      chat: recordAll,
      env: { DEBOUNCE_MS: '300', MAX_WAIT_MS: '10000' },
    });
    for (const burst of ['a', 'b', 'c']) {
      for (let i = 1; i <= 3; i++) await send('bursty', `${burst}${i}`);
      await waitFor(async () => reflections().some((r) => r.includes(`${burst}3`)) && (await drained()));
      await sleep(400);
    }
    expect(reflections()).toEqual([
      ['a1', 'a2', 'a3'],
      ['b1', 'b2', 'b3'],
      ['c1', 'c2', 'c3'],
    ]);
  });

  it('a thread that never goes quiet still reflects every maxWait', async () => {
    h = await startHarness({
      roles: ['reflection'],
      chat: recordAll,
      env: { DEBOUNCE_MS: '500', MAX_WAIT_MS: '1200' },
    });
    const started = Date.now();
    let i = 0;
    // A turn every 150 ms for 4 s: never quiet for 500 ms.
    while (Date.now() - started < 4_000) {
      await send('chatty', `t${++i}`);
      await sleep(150);
    }
    const duringTalk = h.model.chatRequests.length;
    expect(duringTalk).toBeGreaterThanOrEqual(2);
    // After the talk ends, everything is reflected, each turn exactly once, in order.
    await waitFor(async () => reflections().flat().length === i && (await drained()));
    expect(reflections().flat()).toEqual(Array.from({ length: i }, (_, k) => `t${k + 1}`));
  });

  it('after the last attempt the job is failed with its turns kept, and a retry reprocesses them', async () => {
    let healthy = false;
    h = await startHarness({
      roles: ['reflection'],
      chat: (req, n) => (healthy ? recordAll(req, n) : { status: 500, error: 'model down' }),
      env: { DEBOUNCE_MS: '100', REFLECTION_ATTEMPTS: '2', REFLECTION_BACKOFF_MS: '100' },
    });
    await send('doomed', 'I adopted a cat named Miso');
    const [failed] = await waitFor(async () => {
      const jobs = await reflectionJobs(h!.runtime, ['failed']);
      return jobs.length ? jobs : null;
    });
    expect(failed!.attemptsMade).toBe(2);
    expect(failed!.failedReason).toMatch(/chat model gpt-4o-mini failed.*500 model down/);
    expect((await h.runtime.buffer.read('doomed', null, 10, 0)).pending.map((e) => e.turn.content)).toEqual([
      'I adopted a cat named Miso',
    ]);
    expect(await h.runtime.store.cursor('doomed')).toBeNull();

    // The operator's CLI lists the failure and retries it (Bull Board's retry button does the same).
    const cli = (...args: string[]) =>
      promisify(execFile)(process.execPath, ['--import', 'tsx', 'workers/jobs.ts', ...args], {
        env: { PATH: process.env.PATH ?? '', REDIS_URL: h!.env.REDIS_URL, ENGRAM_PREFIX: h!.env.ENGRAM_PREFIX },
      });
    const listed = (await cli('failed')).stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    const queue = threadQueue(h.runtime, 'doomed').name;
    expect(listed).toMatchObject([{ id: failed!.id, queue, data: { threadId: 'doomed' }, attempts: 2 }]);
    healthy = true;
    // One line per shard's reflection queue (the CLI reads the shards the service published).
    const retried = (await cli('retry', '--all')).stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { retried: number; queue: string });
    expect(retried).toHaveLength(TEST_REDIS_SHARDS);
    expect(retried.filter((r) => r.retried > 0)).toEqual([{ retried: 1, queue }]);
    await waitFor(async () => (await h!.runtime.store.cursor('doomed')) !== null);
    expect(reflections().at(-1)).toEqual(['I adopted a cat named Miso']);
    await waitFor(
      async () =>
        (await h!.runtime.buffer.read('doomed', await h!.runtime.store.cursor('doomed'), 10, 0)).pending.length === 0,
    );
  });

  it('retry --thread brings back a parked thread, by its failed job or, once that is removed, a new one', async () => {
    let healthy = false;
    h = await startHarness({
      roles: ['reflection'],
      chat: (req, n) => (healthy ? recordAll(req, n) : { status: 500, error: 'model down' }),
      env: { DEBOUNCE_MS: '100', REFLECTION_ATTEMPTS: '1' },
    });
    const cli = (...args: string[]) =>
      promisify(execFile)(process.execPath, ['--import', 'tsx', 'workers/jobs.ts', ...args], {
        env: { PATH: process.env.PATH ?? '', REDIS_URL: h!.env.REDIS_URL, ENGRAM_PREFIX: h!.env.ENGRAM_PREFIX },
      });
    const failedJob = () =>
      waitFor(async () => (await reflectionJobs(h!.runtime, ['failed']))[0] ?? null, { timeoutMs: 10_000 });
    const queue = threadQueue(h.runtime, 'stuck').name;
    await send('stuck', 'I adopted a cat named Miso');
    const first = await failedJob();
    await waitFor(async () => (await h!.runtime.buffer.parked(10)).count === 1);
    // While its failed job is kept, that job is the one retried (its attempts' history with it).
    const again = JSON.parse((await cli('retry', '--thread', 'stuck')).stdout);
    expect(again).toEqual({ retried: 1, thread: 'stuck', id: first.id, queue });
    await waitFor(async () => h!.model.chatRequests.length === 2 && (await first.getState()) === 'failed');
    await waitFor(async () => (await h!.runtime.buffer.parked(10)).count === 1);
    // BullMQ removes failed jobs after 30 days; the thread stays parked with its turns.
    await waitFor(async () =>
      (await reflectionJobs(h!.runtime, ['active', 'waiting', 'delayed'])).length === 0 ? true : null,
    );
    await first.remove();
    expect((await cli('retry', '--all')).stdout).not.toMatch(/"retried":[1-9]/);
    healthy = true;
    const fresh = JSON.parse((await cli('retry', '--thread', 'stuck')).stdout);
    expect(fresh).toMatchObject({ retried: 1, thread: 'stuck', queue, newJob: true });
    await waitFor(async () => (await h!.runtime.store.cursor('stuck')) !== null);
    expect(reflections().at(-1)).toEqual(['I adopted a cat named Miso']);
    expect((await h.runtime.buffer.parked(10)).count).toBe(0);
    const refused = await cli('retry', '--thread', 'stuck').catch((e: { code: number; stderr: string }) => e);
    expect(refused).toMatchObject({ code: 1, stderr: expect.stringMatching(/thread "stuck" is not parked/) });
  });

  it("an SDK client's jobs carry its reflectionAttempts and reflectionBackoffMs, whose defaults are the service's", async () => {
    h = await startHarness({
      roles: ['reflection'],
      chat: () => ({ status: 500, error: 'model down' }),
      env: { DEBOUNCE_MS: '100' },
    });
    const options = {
      redisUrl: h.env.REDIS_URL!,
      prefix: h.env.ENGRAM_PREFIX,
      debounceMs: 100,
      log: createLogger({ level: 'silent' }),
    };
    // The bounds of REFLECTION_ATTEMPTS and REFLECTION_BACKOFF_MS.
    expect(() => new EngramClient({ ...options, reflectionAttempts: 0 })).toThrow(
      /invalid engram client options[\s\S]*reflectionAttempts/,
    );
    expect(() => new EngramClient({ ...options, reflectionAttempts: 101 })).toThrow(
      /invalid engram client options[\s\S]*reflectionAttempts/,
    );
    expect(() => new EngramClient({ ...options, reflectionBackoffMs: -1 })).toThrow(
      /invalid engram client options[\s\S]*reflectionBackoffMs/,
    );
    const custom = new EngramClient({ ...options, reflectionAttempts: 2, reflectionBackoffMs: 100 });
    const plain = new EngramClient(options);
    onTestFinished(() => Promise.all([custom.close(), plain.close()]).then(() => undefined));
    await Promise.all([custom.ready(), plain.ready()]);
    const turn = (threadId: string) => ({
      threadId,
      context: { userId: 'u1' },
      messages: [{ role: 'user' as const, content: 'I adopted a cat named Miso' }],
    });

    await custom.enqueue(turn('sdk-custom'));
    const [failed] = await waitFor(async () => {
      const jobs = await reflectionJobs(h!.runtime, ['failed']);
      return jobs.length ? jobs : null;
    });
    expect(failed!.data.threadId).toBe('sdk-custom');
    expect(failed!.attemptsMade).toBe(2); // failed for good by the worker, at the client's count
    expect(failed!.opts).toMatchObject({ attempts: 2, backoff: { type: 'exponential', delay: 100 } });

    await plain.enqueue(turn('sdk-default'));
    const job = await threadJob(h.runtime, 'sdk-default');
    expect(job!.opts).toMatchObject({
      attempts: h.env.REFLECTION_ATTEMPTS,
      backoff: { type: 'exponential', delay: h.env.REFLECTION_BACKOFF_MS },
    });
  });

  it('stop: the reflection worker takes no new job while the HTTP server drains a request', async () => {
    h = await startHarness({ roles: ['api', 'reflection'], chat: recordAll, env: { DEBOUNCE_MS: '100' } });
    h.model.embeddingLatencyMs = 2_000; // holds a search request, which the server's close waits for
    // Connection: close (no agent): a kept-alive connection holds the server's close for its idle timeout.
    const search = new Promise<number | undefined>((resolve, reject) => {
      get(`${h!.url}/v1/memories/search?namespace=memories&namespace=u1&query=cats`, { agent: false }, (res) =>
        res.resume().on('end', () => resolve(res.statusCode)),
      ).on('error', reject);
    });
    await waitFor(() => h!.model.embeddingRequests === 1);
    const stopped = h.runtime.stop();
    // The producer's connection stays open until every role has stopped.
    await send('during-stop', 'I adopted a cat');
    await sleep(800); // the job came due after 100 ms: a worker still taking jobs would be reflecting
    expect(h.model.chatRequests).toHaveLength(0);
    expect(await search).toBe(200);
    await stopped;
    expect(h.model.chatRequests).toHaveLength(0);
  });

  it('stop: a request in flight on a kept-alive connection is answered with Connection: close, so it does not hold the close', async () => {
    h = await startHarness({ roles: ['api'] });
    h.model.embeddingLatencyMs = 1_000;
    const agent = new Agent({ keepAlive: true });
    const search = new Promise<{ status?: number; connection?: string }>((resolve, reject) => {
      get(`${h!.url}/v1/memories/search?namespace=memories&namespace=u1&query=cats`, { agent }, (res) =>
        res.resume().on('end', () => resolve({ status: res.statusCode, connection: res.headers.connection })),
      ).on('error', reject);
    });
    await waitFor(() => h!.model.embeddingRequests === 1);
    const stopped = h.runtime.stop();
    expect(await search).toEqual({ status: 200, connection: 'close' });
    await stopped; // kept alive, the connection held this for the keep-alive timeout (72 s)
    agent.destroy();
  });

  it('rollback: new turns abort the running reflection before it commits, and one reflection handles all turns', async () => {
    let release: (() => void) | null = null;
    h = await startHarness({
      roles: ['reflection'],
      chat: async (req, n) => {
        if (n === 0) await new Promise<void>((r) => (release = r)); // hold the first reflection
        return recordAll(req, n);
      },
      env: { DEBOUNCE_MS: '100', WORKER_LOCK_MS: '1000', REFLECTION_POLICY: 'rollback' },
    });
    await send('rb', 'first');
    await waitFor(() => h!.model.chatRequests.length === 1);
    await send('rb', 'second');
    await sleep(700); // the heartbeat (every ~333 ms) sees the new turn
    release!();
    await waitFor(async () => h!.model.chatRequests.length === 2 && (await drained()));
    const memories = await h.runtime.store.search({
      scope: { namespaces: [['memories', 'u1']] },
      vector: new Array(64).fill(0.1),
      filter: [],
      limit: 10,
      offset: 0,
    });
    expect(memories.map((m) => m.value.content).sort()).toEqual(['first', 'second']);
    const history = await Promise.all(memories.map((m) => h!.runtime.store.history(['memories', 'u1'], m.key)));
    // Both facts came from the one committed reflection (the second job), none from the aborted one.
    expect(new Set(history.flat().map((e) => e.actor)).size).toBe(1);
    expect(reflections()[1]).toEqual(['first', 'second']);
  });

  it('enqueue (default): the running reflection commits, and a follow-up handles the new turns', async () => {
    let release: (() => void) | null = null;
    h = await startHarness({
      roles: ['reflection'],
      chat: async (req, n) => {
        if (n === 0) await new Promise<void>((r) => (release = r));
        return recordAll(req, n);
      },
      env: { DEBOUNCE_MS: '100', WORKER_LOCK_MS: '1000' },
    });
    await send('eq', 'first');
    await waitFor(() => h!.model.chatRequests.length === 1);
    await send('eq', 'second');
    await sleep(500);
    release!();
    await waitFor(async () => h!.model.chatRequests.length === 2 && (await drained()));
    expect(reflections()).toEqual([['first'], ['second']]);
  });
});
