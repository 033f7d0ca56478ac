/**
 * npm run bench:threads -- [--threads 100000] [--n 3000]
 *
 * Many live threads in Redis, each pending with one short turn (and its delayed reflection job),
 * against the real Redis, under a prefix of its own that it deletes at the end (or on Ctrl-C):
 *  1. the memory a pending thread costs beyond its turn's text (MEMORY USAGE of every key under
 *     the prefix, by role, before and after filling; INFO used_memory's delta beside it);
 *  2. the SDK enqueue p50 / PING p50 ratio (interleaved) with 10 threads pending, with
 *     `--threads` pending, and with 10 again once those are deleted (the bracket);
 *  3. what the ceiling sweeper and BullMQ's delayed set cost at that size: a pass that finds
 *     nothing due, a pass that finds 100, the sets' sizes, and how late a due job starts.
 * No reflection runs: the state is the measure, not the filling (which is concurrent).
 */
import { Redis } from 'ioredis';
import { defaultKinds } from '../src/memory/kinds.js';
import { createLogger } from '../src/observability/logger.js';
import { BUFFER_DEFAULTS, ThreadBuffer } from '../src/queue/buffer.js';
import { createReflectionQueues } from '../src/queue/queues.js';
import { EngramClient } from '../src/sdk/client.js';
import { onceCleanup } from './pipeline-procs.js';
import { int, ms, now, summarize, table, flag } from './stats.js';
import { unlinkUnder, usageUnder, usedMemory } from './threads-memory.js';
import { interleaved, promotionLateness, sweepPass } from './threads-probes.js';
import type { EngramQueue } from '../src/queue/queues.js';

const THREADS = flag('threads', 100_000);
const N = flag('n', 3_000);
const REDIS_URL = process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379';
const prefix = `engram-bench_threads_${Date.now().toString(36)}`;
const log = createLogger({ level: 'warn' });
const out = (line = '') => process.stdout.write(`${line}\n`);

// Given every setting, the client needs no published ones. A window of an hour keeps every
// thread pending and every job delayed for the whole run; `due` makes threads whose ceilings
// fall due after a second, for the sweeper's pass that finds some.
const client = (debounceMs: number, maxWaitMs: number) =>
  new EngramClient({
    redisUrl: REDIS_URL,
    prefix,
    debounceMs,
    maxWaitMs,
    policy: 'enqueue',
    reflectionAttempts: 5,
    reflectionBackoffMs: 5_000,
    kinds: defaultKinds,
    log,
  });
const sdk = client(3_600_000, 7_200_000);
const due = client(1_000, 1_000);
const redis = new Redis(REDIS_URL);
const own = new Redis(REDIS_URL, { maxRetriesPerRequest: null });
const buffer = new ThreadBuffer(own, prefix, BUFFER_DEFAULTS);
const [queue] = createReflectionQueues(
  own,
  { prefix, shards: 1, reflectionAttempts: 5, reflectionBackoffMs: 5_000 },
  log,
) as [EngramQueue<'reflection'>];
const cleanup = onceCleanup(async () => {
  await Promise.allSettled([sdk.close(), due.close(), queue.close()]);
  // Again until a scan finds none: on Ctrl-C, appends in flight land after the first scan.
  for (let pass = 0; pass < 5 && (await unlinkUnder(redis, prefix)) > 0; pass++)
    await new Promise((r) => setTimeout(r, 200));
  own.disconnect();
  redis.disconnect();
});

const text = (i: number) => `short turn ${i}: I like trains`;
// Message ids as clients should send them (idempotency keys), each new: a re-sent id is a
// duplicate, which takes a shorter path through the append.
let seq = 0;
const turn = (i: number, threadId: string) => ({
  threadId,
  context: { userId: `u-${threadId}` },
  messages: [{ id: `m${seq++}`, role: 'user' as const, content: text(i) }],
});
const p50 = (xs: number[]) => summarize(xs).p50;
const ratio = (m: { samples: number[]; pings: number[] }) => p50(m.samples) / p50(m.pings);

/** Every measurement at the current size; `threads` are the pending threads later turns go to. */
async function measure(label: string, tag: string, threads: string[]) {
  const [pending, delayed] = await Promise.all([
    redis.zcard(`${prefix}:ceilings`),
    redis.zcard(`${prefix}:reflection:delayed`),
  ]);
  const pick = () => threads[Math.floor(Math.random() * threads.length)] as string;
  const later = await interleaved(redis, N, (i) => sdk.enqueue(turn(i, pick())));
  // The append's first read, alone, on the same random threads: 10 threads stay in the CPU's
  // caches and 100,000 do not, and this read pays that as the append does.
  const read = await interleaved(redis, N, () =>
    redis.hmget(`${prefix}:thread:${pick()}:meta`, 'firstPendingAt', 'ctx', 'scheduled', 'settings'),
  );
  const empty = await interleaved(redis, 500, () => buffer.dueCeilings(Date.now(), 100));
  const late = await promotionLateness(REDIS_URL, prefix, queue, 20);
  const first = await interleaved(redis, Math.ceil(N / 10), (i) => sdk.enqueue(turn(i, `${tag}-first-${i}`)));
  const passes: number[] = [];
  for (let round = 0; round < 3; round++) {
    for (let i = 0; i < 100; i++) await due.enqueue(turn(i, `${tag}-due-${round}-${i}`));
    await new Promise((r) => setTimeout(r, 1_100));
    const pass = await sweepPass(buffer, queue, log);
    if (pass.due !== 100) throw new Error(`a sweep pass found ${pass.due} due ceilings, not 100`);
    passes.push(pass.ms);
  }
  const pings = [...later.pings, ...first.pings, ...empty.pings];
  return {
    later,
    read,
    first,
    row: {
      state: label,
      'pending threads': int(pending),
      'delayed jobs': int(delayed),
      'PING p50': ms(p50(pings)),
      'later turn p50': ms(p50(later.samples)),
      'later x PING': ratio(later).toFixed(2),
      'HMGET meta x PING': ratio(read).toFixed(2),
      'first turn p50': ms(p50(first.samples)),
      'first x PING': ratio(first).toFixed(2),
      'sweep, none due p50': ms(p50(empty.samples)),
      'sweep, 100 due (median of 3)': ms(summarize(passes).p50),
      'due job starts late p50/p99': `${ms(summarize(late).p50)} / ${ms(summarize(late).p99)}`,
    },
  };
}

/** Ten pending threads, and enough calls for V8 to optimize the hot path before any is measured. */
async function tenThreads(tag: string): Promise<string[]> {
  const ten = Array.from({ length: 10 }, (_, i) => `${tag}-${i}`);
  for (let i = 0; i < 5_000; i++) await sdk.enqueue(turn(i, ten[i % 10] as string));
  return ten;
}

try {
  out(`bench:threads (${new Date().toISOString()}, node ${process.version}), prefix ${prefix}`);
  // The two settings that decide most of a thread's cost (docs/operations.md, "Redis").
  const setting = async (name: string) => ((await redis.config('GET', name)) as string[])[1] ?? '?';
  out(
    `Redis stream-node-max-bytes ${await setting('stream-node-max-bytes')}, hash-max-listpack-value ${await setting('hash-max-listpack-value')}`,
  );
  const small = await measure('10 pending', 'small', await tenThreads('small'));
  const before = await usageUnder(redis, prefix);
  const usedBefore = await usedMemory(redis);
  const t0 = now();
  let next = 0;
  await Promise.all(
    Array.from({ length: 256 }, async () => {
      while (next < THREADS) {
        const i = next++;
        await sdk.enqueue(turn(i, `t-${i}`));
      }
    }),
  );
  const fillSeconds = (now() - t0) / 1000;
  const usedAfter = await usedMemory(redis);
  const after = await usageUnder(redis, prefix);
  const textBytes = Array.from({ length: THREADS }, (_, i) => Buffer.byteLength(text(i))).reduce((a, b) => a + b, 0);
  const big = await measure(
    `${int(THREADS)} pending`,
    'big',
    Array.from({ length: THREADS }, (_, i) => `t-${i}`),
  );
  await unlinkUnder(redis, prefix);
  const bracket = await measure('10 pending, after', 'again', await tenThreads('again'));

  out(`\nfilled ${int(THREADS)} threads in ${fillSeconds.toFixed(1)} s (SDK, 256 in flight)\n`);
  table([small.row, big.row, bracket.row]);

  const perThread = (after.bytes - before.bytes) / THREADS;
  const meanText = textBytes / THREADS;
  out(`\nRedis memory per pending thread (MEMORY USAGE deltas, ${int(THREADS)} threads of one turn with a message id)`);
  const roles = [...after.byRole.keys()].sort();
  table(
    roles.map((r) => {
      const a = after.byRole.get(r) ?? { keys: 0, bytes: 0 };
      const b = before.byRole.get(r) ?? { keys: 0, bytes: 0 };
      return { key: r, keys: int(a.keys), 'bytes per thread': ((a.bytes - b.bytes) / THREADS).toFixed(1) };
    }),
  );
  const beyond = perThread - meanText;
  const infoPer = (usedAfter - usedBefore) / THREADS;
  out(
    `total ${perThread.toFixed(0)} B per thread, of which turn text ${meanText.toFixed(0)} B: ${beyond.toFixed(0)} B beyond it ` +
      `(INFO used_memory delta: ${infoPer.toFixed(0)} B per thread, ${(infoPer - meanText).toFixed(0)} B beyond; the server's whole memory, so other clients move it too)`,
  );
  const worse = Math.max(ratio(small.later), ratio(bracket.later));
  out('\nTargets (issue 18)');
  out(
    `  memory beyond the turn's text <= 1 KiB per thread: ${beyond.toFixed(0)} B: ${beyond <= 1024 ? 'PASS' : 'FAIL'}`,
  );
  out(
    `  enqueue p50 / PING p50 at ${int(THREADS)} pending no worse than at 10: later turns ${ratio(big.later).toFixed(2)} against ` +
      `${ratio(small.later).toFixed(2)} before and ${ratio(bracket.later).toFixed(2)} after: ` +
      `${ratio(big.later) <= worse * 1.1 ? 'PASS' : 'FAIL'} (within 10 % of the worse bracket, this host's run-to-run noise); ` +
      `first turns ${ratio(big.first).toFixed(2)} against ${ratio(small.first).toFixed(2)} and ${ratio(bracket.first).toFixed(2)}`,
  );
  // What a plain read of the same random thread's meta grows by: the part of the growth that is
  // Redis reading cold memory in a bigger dataset, which any command touching a key pays.
  const grew = (m: 'later' | 'read') => p50(big[m].samples) - Math.max(p50(small[m].samples), p50(bracket[m].samples));
  out(
    `  growth at ${int(THREADS)} pending over the worse bracket, p50: later turn ${ms(grew('later'))}, ` +
      `a plain HMGET of the thread's meta ${ms(grew('read'))}`,
  );
} finally {
  await cleanup();
}
