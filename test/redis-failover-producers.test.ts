import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Runtime } from '../src/app/runtime.js';
import { settingsKey } from '../src/config/published-settings.js';
import { UnavailableError } from '../src/errors.js';
import { createLogger } from '../src/observability/logger.js';
import { createRedis } from '../src/queue/connection.js';
import { countJobs, createQueues, everyQueue } from '../src/queue/queues.js';
import { shardOf, shardTags } from '../src/queue/shards.js';
import { EngramClient } from '../src/sdk/client.js';
import { startHarness, type Harness } from './helpers/harness.js';
import { TestCluster } from './helpers/redis-cluster.js';

const SHARDS = 3;
/**
 * The shard whose master dies. Not shard 0: the BullMQ queue a lazy connection's first use
 * left waiting for ever was the first one made on it, shard 0's, whichever master died.
 */
const FAILED = 1;
const QUEUES = ['consolidation', 'reflection', 'reflection-1', 'reflection-2'];
/** Far beyond any answer or refusal here (each is bounded by a 2 to 5 s deadline); a hang is for ever. */
const BOUND_MS = 15_000;
const silent = createLogger({ level: 'silent' });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A thread id of each shard, named for its phase: `[n]` is shard n's. */
function threadsOf(phase: string): string[] {
  const threads: (string | undefined)[] = Array.from({ length: SHARDS }, () => undefined);
  for (let i = 0; threads.includes(undefined); i++) threads[shardOf(`${phase}-${i}`, SHARDS)] ??= `${phase}-${i}`;
  return threads as string[];
}

const turnOf = (threadId: string) => ({
  context: { userId: `u-${threadId}` },
  messages: [{ id: `${threadId}-1`, role: 'user' as const, content: `I love ramen. (${threadId})` }],
});

/** How a call ended, or `pending` if it had not after `ms`: what the test compares. */
async function outcome(work: Promise<unknown>, ms = BOUND_MS): Promise<string> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<string>((resolve) => (timer = setTimeout(() => resolve('pending'), ms)));
  const settled = work.then(
    () => 'ok',
    (err: Error) => (err instanceof UnavailableError ? 'UnavailableError' : `${err.name}: ${err.message}`),
  );
  try {
    return await Promise.race([settled, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** A turn over HTTP: its status, `pending` when no answer came within `BOUND_MS`, or why none could. */
async function post(url: string | null, threadId: string): Promise<number | string> {
  if (!url) return 'not listening';
  try {
    const res = await fetch(`${url}/v1/threads/${threadId}/turns`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(turnOf(threadId)),
      signal: AbortSignal.timeout(BOUND_MS),
    });
    await res.arrayBuffer();
    return res.status;
  } catch (err) {
    return (err as Error).name === 'TimeoutError' ? 'pending' : (err as Error).message;
  }
}

/** A GET's status and JSON or text body, or `pending` / why it failed, as for `post`. */
async function get(url: string | null, path: string): Promise<{ status: number | string; body?: unknown }> {
  if (!url) return { status: 'not listening' };
  try {
    const res = await fetch(`${url}${path}`, { signal: AbortSignal.timeout(BOUND_MS) });
    const text = await res.text();
    return {
      status: res.status,
      body: res.headers.get('content-type')?.startsWith('application/json') ? JSON.parse(text) : text,
    };
  } catch (err) {
    return { status: (err as Error).name === 'TimeoutError' ? 'pending' : (err as Error).message };
  }
}

/**
 * Until accepted, as a chat application sends a turn: again after a refusal that says to (503,
 * UnavailableError), at most 20 times. Returns how it ended and how many refusals came first.
 */
async function untilAccepted(
  send: () => Promise<string | number>,
): Promise<{ last: string | number; refused: number }> {
  let last: string | number = 'unsent';
  for (let refused = 0; refused < 20; refused++) {
    last = await send();
    if (last !== 503 && last !== 'UnavailableError') return { last, refused };
    await sleep(100);
  }
  return { last, refused: 20 };
}

/**
 * Producers first connected while a Redis Cluster master is dead and every node says
 * `cluster_state:fail` (its failure flagged, its replica not yet promoted): a new API process
 * of the deployment (its producer connection, whose queues the metrics gauge reads, and Bull
 * Board's), an application's new SDK client, and BullMQ queues first used on a new lazy producer
 * connection (the kind the SDK makes, and Bull Board's was). The window lasts a second or so in a
 * real failover; here the replica's promotion is held back until every producer has made its
 * first attempt, so the case is met on every run. None may hang: a turn is refused at once or
 * within its deadline, a process waits for Redis, and once the replica is promoted every shard
 * takes turns and every queue answers. Before queues.ts connected a lazy connection itself, the
 * first queue made on one waited for ever (docs/decisions.md).
 */
describe('producers started during a Redis Cluster master failover', () => {
  let cluster: TestCluster;
  /** The deployment's API process, running before the master dies. */
  let running: Harness;
  beforeAll(async () => {
    cluster = await TestCluster.start();
    running = await startHarness({ roles: ['api'], env: { REDIS_URL: cluster.url, REDIS_SHARDS: String(SHARDS) } });
  });
  afterAll(async () => {
    // Bounded: a runtime wedged by a failover must not keep the cluster's servers past the file.
    await Promise.race([running?.stop(), sleep(20_000)]);
    await cluster?.stop();
  });

  it('refuse or wait while the cluster is down, never hang, and take every shard once the replica is promoted', async () => {
    const { env } = running;
    const cleanups: (() => Promise<unknown>)[] = [];
    const sdk = () => {
      const client = new EngramClient({
        redisUrl: cluster.url,
        prefix: env.ENGRAM_PREFIX,
        enqueueTimeoutMs: 2_000,
        log: silent,
      });
      cleanups.push(() => client.close());
      return client;
    };
    try {
      // The settings the running process published, and its other writes, are on the replica.
      const tag = shardTags(env.ENGRAM_PREFIX, SHARDS)[FAILED]!;
      const master = await cluster.masterOf(tag);
      await master.admin.set(`${tag}:failover-probe`, '1');
      expect(await master.admin.call('wait', '1', '5000')).toBe(1);

      // A new SDK client reads them before its first turn, whichever shard the turn is for: the
      // settings key is on any master, the dead one in about a third of the runs, and then the
      // client reads a copy of them on another master.
      const settingsOnDeadMaster = (await cluster.masterOf(settingsKey(env.ENGRAM_PREFIX))) === master;
      const kill = await cluster.killMasterOf(tag, { holdPromotion: true });
      // Dead, not yet flagged failed (about a node timeout): a new SDK client's turns for the other
      // shards. Accepted, or refused if the flag came first.
      const beforeFlagMay = ['ok', 'UnavailableError'];
      const early = sdk();
      const beforeFlag = await Promise.all(
        threadsOf('before-flag').map((t, shard) =>
          shard === FAILED ? Promise.resolve(null) : outcome(early.enqueue({ threadId: t, ...turnOf(t) })),
        ),
      );
      await cluster.down();

      // Down: every node says cluster_state:fail, and the promotion is held.
      // - a BullMQ queue's first use on a new lazy producer connection;
      const lazy = createRedis(cluster.url, 'producer', silent, { lazy: true });
      const queueSettings = {
        prefix: env.ENGRAM_PREFIX,
        shards: SHARDS,
        reflectionAttempts: 5,
        reflectionBackoffMs: 5_000,
      };
      const queues = createQueues(lazy, queueSettings, silent);
      cleanups.push(async () => {
        await Promise.all(everyQueue(queues).map((q) => q.close()));
        lazy.disconnect();
      });
      const counting = countJobs(everyQueue(queues), 'waiting', 'delayed');
      counting.catch(() => undefined); // read once promoted
      // - a new process of the deployment: its producer and Bull Board connections open now;
      const fresh = new Runtime(env, silent);
      cleanups.push(() => Promise.race([fresh.stop(), sleep(20_000)]));
      await fresh.migrate();
      let started = false;
      const starting = fresh.start(['api']).then(() => (started = true));
      // - a new SDK client, and the one made before: every shard's turn refused, not hung.
      const late = sdk();
      const down = threadsOf('down');
      const [lateDown, earlyDown, runningDown] = await Promise.all([
        Promise.all(down.map((t) => outcome(late.enqueue({ threadId: t, ...turnOf(t) })))),
        Promise.all(down.map((t) => outcome(early.enqueue({ threadId: t, ...turnOf(t) })))),
        Promise.all(down.map((t) => post(running.url, t))),
      ]);
      // The new process waits for Redis, as at any start while it is out of reach.
      const startedWhileDown = started;

      await cluster.allowPromotion(kill);
      const failover = await cluster.promotion(kill);
      const startedAfter = await outcome(starting, 30_000);
      const address = fresh.server?.server.address();
      const freshUrl = address && typeof address === 'object' ? `http://127.0.0.1:${address.port}` : null;

      // Promoted: every shard through every producer, new or not; and the queues first used while
      // the cluster was down, directly, through Bull Board and through the metrics gauge.
      const perShard = (phase: string, send: (t: string) => Promise<string | number>) =>
        Promise.all(threadsOf(phase).map(async (t) => (await untilAccepted(() => send(t))).last));
      const enqueue = (client: EngramClient) => (t: string) => outcome(client.enqueue({ threadId: t, ...turnOf(t) }));
      const [lateAfter, earlyAfter, freshAfter, runningAfter, firstUse, board, scrape, ready] = await Promise.all([
        perShard('late-after', enqueue(late)),
        perShard('early-after', enqueue(early)),
        perShard('fresh-after', (t) => post(freshUrl, t)),
        perShard('running-after', (t) => post(running.url, t)),
        outcome(counting),
        get(freshUrl, '/admin/queues/api/queues?activeQueue=reflection&page=1'),
        get(freshUrl, '/metrics'),
        get(freshUrl, '/readyz'),
      ]);
      const boardQueues = (board.body as { queues?: { name: string }[] } | undefined)?.queues;
      const gauged = [...String(scrape.body).matchAll(/^engram_queue_jobs\{queue="([^"]+)"/gm)].map((m) => m[1]);
      console.info(`failover with new producers: ${JSON.stringify({ failover, settingsOnDeadMaster, beforeFlag })}`);

      expect({
        beforeFlag: beforeFlag.map((o) => o === null || beforeFlagMay.includes(o)),
        lateDown,
        earlyDown,
        runningDown,
        startedWhileDown,
        startedAfter,
        lateAfter,
        earlyAfter,
        freshAfter,
        runningAfter,
        firstUse,
        board: { status: board.status, queues: boardQueues?.map((q) => q.name).sort() },
        gauged: [...new Set(gauged)].sort(),
        ready: ready.status,
      }).toEqual({
        beforeFlag: [true, true, true],
        lateDown: ['UnavailableError', 'UnavailableError', 'UnavailableError'],
        earlyDown: ['UnavailableError', 'UnavailableError', 'UnavailableError'],
        runningDown: [503, 503, 503],
        startedWhileDown: false,
        startedAfter: 'ok',
        lateAfter: ['ok', 'ok', 'ok'],
        earlyAfter: ['ok', 'ok', 'ok'],
        freshAfter: [202, 202, 202],
        runningAfter: [202, 202, 202],
        firstUse: 'ok',
        board: { status: 200, queues: QUEUES },
        gauged: QUEUES,
        ready: 200,
      });
    } finally {
      for (const c of cleanups.reverse()) await c().catch(() => undefined);
    }
  });
});
