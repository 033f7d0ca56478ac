/**
 * npm run bench:cluster -- [--threads 1000] [--turns 20000]
 * Sharding over the local 3-master Redis Cluster (ops/redis-cluster.sh), one shard under a
 * `{…}` prefix against REDIS_SHARDS=6: per master, the share of the run's keys and of the
 * commands it served (INFO commandstats deltas); the first turn of each thread enqueued
 * sequentially (two round trips: append, job add) beside a PING of the thread's own master
 * interleaved with it; turns/s with 32 enqueues in flight; both before any worker runs, so that
 * only the hot path does. Then a reflection process' workers (one per shard) reflect every thread
 * (fake model, real Postgres).
 */
import { Redis } from 'ioredis';
import { Runtime } from '../src/app/runtime.js';
import { createLogger } from '../src/observability/logger.js';
import { countJobs } from '../src/queue/queues.js';
import { masters, scanPages } from '../src/queue/scan.js';
import { foodieModel } from '../test/fake-model/foodie.js';
import { nodeFor, startHarness, testRedis, uniqueName } from '../test/helpers/harness.js';
import { flag, int, ms, now, summarize, table } from './stats.js';

const THREADS = flag('threads', 1_000);
const TURNS = flag('turns', 20_000);
const IN_FLIGHT = 32;
const URL = 'redis+cluster://127.0.0.1:7001';

const cluster = testRedis(URL);
const nodes = await masters(cluster);
const nameOf = (n: Redis) => `${n.options.host}:${n.options.port}`;
// Plain connections for the stats, so that reading them is not counted as the run's commands.
const stats = nodes.map((n) => new Redis({ host: n.options.host, port: n.options.port }));
const SKIP = new Set(['cmdstat_info', 'cmdstat_config', 'cmdstat_ping', 'cmdstat_cluster', 'cmdstat_client']);
async function commandCounts(): Promise<number[]> {
  return Promise.all(
    stats.map(async (s) => {
      let calls = 0;
      for (const [, name, n] of String(await s.info('commandstats')).matchAll(/^(cmdstat_[^:]+):calls=(\d+)/gm))
        if (!SKIP.has(name as string)) calls += Number(n);
      return calls;
    }),
  );
}
const pct = (part: number, whole: number) => `${((100 * part) / Math.max(1, whole)).toFixed(0)}%`;

async function run(label: string, shards: number, prefix: string) {
  const h = await startHarness({
    roles: [],
    chat: foodieModel,
    env: {
      REDIS_URL: URL,
      REDIS_SHARDS: String(shards),
      ENGRAM_PREFIX: prefix,
      DEBOUNCE_MS: '100',
      MAX_WAIT_MS: '600000',
      REFLECTION_CONCURRENCY: '16',
      LOG_LEVEL: 'warn',
    },
  });
  try {
    const producer = h.runtime.producer;
    const threads = Array.from({ length: THREADS }, (_, i) => `bench-${i}`);
    const turn = (t: string, i: number) => ({
      threadId: t,
      context: { userId: `u-${t}` },
      messages: [{ role: 'user' as const, content: `turn ${i}: I love ramen!` }],
    });
    const before = await commandCounts();

    // First turns, one at a time, each beside a PING of the thread's master.
    const firsts: number[] = [];
    const pings: number[] = [];
    for (const [i, t] of threads.entries()) {
      const node = nodeFor(cluster, h.runtime.buffer.keys(t).turns);
      let at = now();
      await node.ping();
      pings.push(now() - at);
      at = now();
      await producer.enqueue(turn(t, i));
      firsts.push(now() - at);
    }

    // Later turns at 32 in flight: the hot path only.
    let next = 0;
    const t0 = now();
    await Promise.all(
      Array.from({ length: IN_FLIGHT }, async () => {
        for (let i = next++; i < TURNS; i = next++) await producer.enqueue(turn(threads[i % THREADS] as string, i));
      }),
    );
    const turnsPerS = TURNS / ((now() - t0) / 1000);

    // A reflection process: one worker and one sweeper per shard.
    const workers = new Runtime(h.env, createLogger({ level: 'warn' }), { ceilingIntervalMs: 200 });
    const started = now();
    await workers.start(['reflection']);
    // Every thread reflected: no pending thread, no job left to run.
    for (;;) {
      const jobs = await countJobs(h.runtime.queues.reflection, 'waiting', 'delayed', 'active');
      if ((await h.runtime.buffer.pendingThreads()) === 0 && Object.values(jobs).every((n) => n === 0)) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    await workers.stop();
    const reflectedS = (now() - started) / 1000;

    const after = await commandCounts();
    const commands = after.map((n, i) => n - (before[i] ?? 0));
    const keys = nodes.map(() => 0);
    for (const pattern of [`${prefix}:*`, `{${prefix}:*`])
      await scanPages(cluster, pattern, async (page, node) => {
        keys[nodes.findIndex((n) => nameOf(n) === nameOf(node))]! += page.length;
      });
    const totalKeys = keys.reduce((a, b) => a + b, 0);
    const totalCommands = commands.reduce((a, b) => a + b, 0);
    const first = summarize(firsts).p50;
    const ping = summarize(pings).p50;
    process.stdout.write(`\n${label}: ${THREADS} threads reflected in ${reflectedS.toFixed(1)} s\n`);
    table(
      nodes.map((n, i) => ({
        master: nameOf(n),
        keys: `${int(keys[i] ?? 0)} (${pct(keys[i] ?? 0, totalKeys)})`,
        commands: `${int(commands[i] ?? 0)} (${pct(commands[i] ?? 0, totalCommands)})`,
      })),
    );
    return {
      setup: label,
      'first turn p50': ms(first),
      'PING p50': ms(ping),
      ratio: `${(first / ping).toFixed(1)}x`,
      [`turns/s at ${IN_FLIGHT}`]: int(turnsPerS),
      'reflected in': `${reflectedS.toFixed(1)} s`,
    };
  } finally {
    await h.stop();
  }
}

const rows = [
  await run('REDIS_SHARDS=1, prefix {…}', 1, `{engram-bench-${uniqueName('k1')}}`),
  await run('REDIS_SHARDS=6', 6, `engram-bench-${uniqueName('k6')}`),
];
process.stdout.write('\n');
table(rows);
for (const s of stats) s.disconnect();
cluster.disconnect();
process.exit(0);
