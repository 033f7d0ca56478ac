import { Redis } from 'ioredis';
import { countJobs } from '../src/queue/queues.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../src/observability/logger.js';
import { publishSettings } from '../src/config/published-settings.js';
import { defaultKinds } from '../src/memory/kinds.js';
import { EngramClient } from '../src/sdk/client.js';
import { UnavailableError } from '../src/sdk/errors.js';
import {
  sdkClient,
  startHarness,
  TEST_REDIS_URL,
  uniqueName,
  deleteKeys,
  waitFor,
  type Harness,
} from './helpers/harness.js';
import { StallProxy } from './helpers/stall-proxy.js';

/** One turn over HTTP, with a message id so that a re-send is a no-op. */
const postTurn = (url: string, threadId: string, id: string) =>
  fetch(`${url}/v1/threads/${threadId}/turns`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ context: { userId: 'u' }, messages: [{ id, role: 'user', content: `turn ${id}` }] }),
  });

/**
 * A Redis that stops answering without closing the connection: enqueue must fail within its
 * deadline, say what to do, and a re-send with the same message ids must not buffer twice.
 */
describe('hot path: a stalled Redis', () => {
  const proxy = new StallProxy();
  let proxyUrl: string;
  let redis: Redis;
  beforeAll(async () => {
    proxyUrl = await proxy.start();
    redis = new Redis(TEST_REDIS_URL);
  });
  afterAll(async () => {
    redis?.disconnect();
    await proxy.stop();
  });

  const turn = (id: string) => ({
    threadId: 't-stall',
    context: { userId: 'u' },
    messages: [{ id, role: 'user' as const, content: `turn ${id}` }],
  });
  const streamLength = (prefix: string, thread: string) => redis.xlen(`${prefix}:thread:${thread}:turns`);

  /** What a service process under `prefix` would have published for producers. */
  const publish = (prefix: string) =>
    publishSettings(
      redis,
      prefix,
      {
        debounceMs: 60_000,
        maxWaitMs: 300_000,
        policy: 'enqueue',
        reflectionAttempts: 5,
        reflectionBackoffMs: 5_000,
        kinds: defaultKinds,
      },
      ['test'],
      createLogger({ level: 'silent' }),
    );

  it('the SDK rejects after enqueueTimeoutMs, and the re-send is a no-op once Redis answers', async () => {
    const prefix = `engram-test-${uniqueName('stall')}`;
    await publish(prefix);
    const client = new EngramClient({
      redisUrl: proxyUrl,
      prefix,
      debounceMs: 60_000,
      enqueueTimeoutMs: 300,
      log: createLogger({ level: 'silent' }),
    });
    try {
      await client.ready();
      expect(await client.enqueue(turn('m0'))).toMatchObject({ accepted: 1 });
      proxy.stall();
      const err = await client.enqueue(turn('m1')).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(UnavailableError);
      expect((err as Error).message).toMatch(/Redis did not answer within 300 ms; .*same message ids/);
      expect((err as UnavailableError).dependency).toBe('redis');
      proxy.resume();
      // The held command ran after all: the re-send finds its id and buffers nothing.
      expect(await client.enqueue(turn('m1'))).toEqual({ threadId: 't-stall', accepted: 0, duplicates: 1 });
      expect(await streamLength(prefix, 't-stall')).toBe(2);
    } finally {
      proxy.resume();
      await client.close();
      await deleteKeys(TEST_REDIS_URL, prefix);
    }
  });

  it("a client's first enqueue on a stalled Redis fails after enqueueTimeoutMs, and the next one connects", async () => {
    const prefix = `engram-test-${uniqueName('stall')}`;
    await publish(prefix);
    proxy.stall();
    const client = new EngramClient({
      redisUrl: proxyUrl,
      prefix,
      enqueueTimeoutMs: 300,
      log: createLogger({ level: 'silent' }),
    });
    try {
      // No ready(): the call itself connects, and a connection that never gets ready must not hold it.
      const err = await client.enqueue(turn('c0')).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(UnavailableError);
      expect((err as Error).message).toMatch(/Redis did not answer within 300 ms while the engram client connected/);
      proxy.resume();
      expect(await client.enqueue(turn('c0'))).toEqual({ threadId: 't-stall', accepted: 1, duplicates: 0 });
    } finally {
      proxy.resume();
      await client.close();
      await deleteKeys(TEST_REDIS_URL, prefix);
    }
  });

  it('a first turn that timed out but ran later gets its job from the re-send, and reflects after the quiet window, not maxWait', async () => {
    // Workers on the real Redis; only the producer's connection goes through the stalling proxy.
    const h = await startHarness({ roles: ['reflection'], env: { DEBOUNCE_MS: '200', MAX_WAIT_MS: '120000' } });
    const client = new EngramClient({
      redisUrl: proxyUrl,
      prefix: h.env.ENGRAM_PREFIX,
      debounceMs: 200,
      maxWaitMs: 120_000,
      enqueueTimeoutMs: 300,
      log: createLogger({ level: 'silent' }),
    });
    const resend = {
      threadId: 't-late',
      context: { userId: 'u' },
      messages: [{ id: 'late-1', role: 'user' as const, content: 'I moved to Porto' }],
    };
    try {
      await client.ready();
      proxy.stall();
      await expect(client.enqueue(resend)).rejects.toThrow(/Redis did not answer within 300 ms/);
      // The held append runs now: it flags the thread as having a job, which nobody added.
      proxy.resume();
      expect(await client.enqueue(resend)).toEqual({ threadId: 't-late', accepted: 0, duplicates: 1 });
      const jobs = await countJobs(h.runtime.queues.reflection, 'delayed', 'waiting', 'active', 'completed');
      expect(Object.values(jobs).reduce((a, b) => a + b, 0)).toBe(1);
      // Without the job only the ceiling sweeper would find the thread, at maxWait (2 minutes).
      await waitFor(async () => (await h.runtime.store.cursor('t-late')) !== null, { timeoutMs: 5_000 });
      expect(h.model.chatRequests).toHaveLength(1);
    } finally {
      proxy.resume();
      await client.close();
      await h.stop();
    }
  });

  describe('over HTTP', () => {
    let h: Harness;
    beforeAll(async () => {
      h = await startHarness({
        roles: ['api'],
        env: { REDIS_URL: proxyUrl, ENQUEUE_TIMEOUT_MS: '300', DEBOUNCE_MS: '60000', MAX_WAIT_MS: '120000' },
      });
    });
    afterAll(async () => {
      proxy.resume();
      await h?.stop();
    });
    const post = (id: string) => postTurn(h.url, 't-stall', id);

    it('answers 503 with what to do, and /readyz reports Redis not ready', async () => {
      expect((await post('h0')).status).toBe(202);
      proxy.stall();
      try {
        const res = await post('h1');
        expect(res.status).toBe(503);
        expect(((await res.json()) as { error: string }).error).toMatch(
          /Redis did not answer within 300 ms; .*same message ids/,
        );
        const ready = await fetch(`${h.url}/readyz`);
        expect(ready.status).toBe(503);
        // The state only: the driver's message (host, port) is in the log, not in the answer.
        expect(await ready.json()).toEqual({ ok: false, checks: { redis: 'timeout', postgres: 'ok' } });
        // The scrape still answers: the process' series, without the queue counts it cannot read.
        const scrape = await fetch(`${h.url}/metrics`);
        const text = await scrape.text();
        expect([scrape.status, /^process_cpu_seconds_total /m.test(text), /^engram_queue_jobs\{/m.test(text)]).toEqual([
          200,
          true,
          false,
        ]);
      } finally {
        proxy.resume();
      }
      const again = await post('h1');
      expect(again.status).toBe(202);
      expect(await (await fetch(`${h.url}/readyz`)).json()).toEqual({
        ok: true,
        checks: { redis: 'ok', postgres: 'ok' },
      });
      expect(await again.json()).toEqual({ threadId: 't-stall', accepted: 0, duplicates: 1 });
      expect(await streamLength(h.env.ENGRAM_PREFIX, 't-stall')).toBe(2);
    });

    it('an erase answers 503 within ENQUEUE_TIMEOUT_MS, over HTTP and the SDK, and erases once Redis answers', async () => {
      const erase = () =>
        fetch(`${h.url}/v1/erase`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ context: { userId: 'u' } }),
        });
      const sdk = sdkClient(h, { redisUrl: proxyUrl, enqueueTimeoutMs: 300 });
      try {
        await sdk.connect();
        proxy.stall();
        try {
          // It used to wait for as long as the stall lasted: here, until the proxy resumed.
          const res = await erase();
          expect(res.status).toBe(503);
          // An erase is asked to retry, not to re-send turns.
          expect(await res.json()).toEqual({ error: 'queue unavailable (Redis did not answer in time); retry later' });
          const err = await sdk.erase({ context: { userId: 'u' } }).catch((e: unknown) => e);
          expect(err).toBeInstanceOf(UnavailableError);
          expect((err as UnavailableError).dependency).toBe('redis');
        } finally {
          proxy.resume();
        }
        expect((await erase()).status).toBe(200);
        expect(await sdk.erase({ context: { userId: 'u' } })).toMatchObject({ threads: 0 });
      } finally {
        await sdk.close();
      }
    });

    it('Bull Board answers 503 naming Redis within ENQUEUE_TIMEOUT_MS, then shows the queues again', async () => {
      const board = () => fetch(`${h.url}/admin/queues/api/queues?activeQueue=reflection&page=1`);
      expect((await board()).status).toBe(200);
      proxy.stall();
      try {
        const res = await board();
        expect(res.status).toBe(503);
        expect(await res.json()).toEqual({ error: 'queue unavailable: Redis did not answer in time; retry later' });
      } finally {
        proxy.resume();
      }
      const back = await waitFor(async () => {
        const res = await board();
        return res.status === 200 ? res : null;
      });
      expect(((await back.json()) as { queues: { name: string }[] }).queues.map((q) => q.name).sort()).toEqual([
        'consolidation',
        'reflection',
      ]);
    });
  });
});

/** Redis gone with a turn's command in flight: ioredis gives up after its retries, and the answer says so. */
describe('hot path: Redis lost with a command in flight', () => {
  const proxy = new StallProxy();
  let port: number;
  let h: Harness;
  beforeAll(async () => {
    const url = await proxy.start();
    port = Number(new URL(url).port);
    // A long deadline: the connection's loss must be what fails the call, not the stall.
    h = await startHarness({
      roles: ['api'],
      env: { REDIS_URL: url, ENQUEUE_TIMEOUT_MS: '30000', DEBOUNCE_MS: '60000', MAX_WAIT_MS: '120000' },
    });
  });
  afterAll(async () => {
    if (!proxy.listening) await proxy.start(port);
    await h?.stop();
    await proxy.stop();
  });
  const post = (id: string) => postTurn(h.url, 't-lost', id);

  it('answers 503 (it was a 500), and takes the re-send once Redis is back', async () => {
    expect((await post('l0')).status).toBe(202);
    proxy.stall();
    const lost = post('l1');
    await waitFor(() => proxy.holding); // the append is sent, and held
    await proxy.stop(); // dropped, and reconnects refused: ioredis rejects with MaxRetriesPerRequestError
    try {
      const res = await lost;
      expect(res.status).toBe(503);
      expect(((await res.json()) as { error: string }).error).toMatch(/Redis is not reachable\); .*same message ids/);
    } finally {
      await proxy.start(port);
    }
    const again = await waitFor(async () => {
      const res = await post('l1');
      return res.status === 202 ? res : null;
    });
    // The held append may have reached Redis as the connection dropped: buffered once either way.
    const { accepted, duplicates } = (await again.json()) as { accepted: number; duplicates: number };
    expect(accepted + duplicates).toBe(1);
    expect((await h.runtime.buffer.read('t-lost', null, 100, 0)).pending.map((e) => e.turn.id)).toEqual(['l0', 'l1']);
  });
});
