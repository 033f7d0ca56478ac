/**
 * The measurements `bench:threads` repeats at each size: calls interleaved with a PING, one pass
 * of the real ceiling sweeper, and how late BullMQ promotes a due delayed job. Not the product.
 */
import { Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { startCeilingSweeper } from '../src/app/ceiling-sweeper.js';
import type { Logger } from '../src/observability/logger.js';
import type { ThreadBuffer } from '../src/queue/buffer.js';
import { scheduleReflection, type EngramQueue } from '../src/queue/queues.js';
import { now } from './stats.js';

/** One PING, one call, and so on: both see the same moments of this shared machine. */
export async function interleaved(redis: Redis, n: number, call: (i: number) => Promise<unknown>) {
  const samples: number[] = [];
  const pings: number[] = [];
  for (let i = 0; i < n; i++) {
    let t = now();
    await redis.ping();
    pings.push(now() - t);
    t = now();
    await call(i);
    samples.push(now() - t);
  }
  return { samples, pings };
}

/**
 * One pass of the sweeper that every reflection process runs (src/app/ceiling-sweeper.ts), timed
 * from its read of the due ceilings to its job add for the last one (each add follows its
 * thread's postponement), through its own buffer's and queue's methods (wrapped on these
 * instances only).
 */
export function sweepPass(
  buffer: ThreadBuffer,
  queue: EngramQueue<'reflection'>,
  log: Logger,
): Promise<{ ms: number; due: number }> {
  const due = buffer.dueCeilings.bind(buffer);
  const add = queue.add.bind(queue);
  return new Promise((resolve) => {
    let t0 = 0;
    let found = -1;
    let added = 0;
    const finish = () => {
      sweeper.stop();
      buffer.dueCeilings = due;
      queue.add = add;
      resolve({ ms: now() - t0, due: found });
    };
    buffer.dueCeilings = async (nowMs, limit) => {
      if (found >= 0) return [];
      t0 = now();
      const list = await due(nowMs, limit);
      found = list.length;
      if (found === 0) finish();
      return list;
    };
    queue.add = async (...args) => {
      const job = await add(...args);
      if (++added === found) finish();
      return job;
    };
    const sweeper = startCeilingSweeper({ buffer, queue, intervalMs: 10, log });
  });
}

/**
 * How late a delayed job starts: `probes` jobs, one at a time, each due `delayMs` after its add,
 * taken by a worker with a no-op processor (BullMQ promotes due jobs as it fetches). Lateness is
 * the processor's start less the job's due time. The first `warmup` are left out (they also take
 * any due job the bench left behind).
 */
export async function promotionLateness(
  redisUrl: string,
  prefix: string,
  queue: EngramQueue<'reflection'>,
  probes: number,
  delayMs = 50,
  warmup = 5,
): Promise<number[]> {
  const connection = new Redis(redisUrl, { maxRetriesPerRequest: null });
  const late = new Map<string, number>();
  const waiters = new Map<string, () => void>();
  const worker = new Worker<{ threadId: string }>(
    'reflection',
    async (job) => {
      const t = Date.now();
      if (job.data.threadId.startsWith('probe-')) {
        late.set(job.data.threadId, t - (job.timestamp + job.delay));
        waiters.get(job.data.threadId)?.();
      }
    },
    { connection, prefix, concurrency: 1 },
  );
  try {
    await worker.waitUntilReady();
    const out: number[] = [];
    for (let i = 0; i < warmup + probes; i++) {
      const id = `probe-${Date.now()}-${i}`;
      const done = new Promise<void>((resolve) => waiters.set(id, resolve));
      await scheduleReflection(queue, id, delayMs);
      await done;
      if (i >= warmup) out.push(late.get(id) as number);
    }
    return out;
  } finally {
    await worker.close();
    connection.disconnect();
  }
}
