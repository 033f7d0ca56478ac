/**
 * npm run bench:ping -- [--n 5000] [--rounds 3]
 * The host's own round-trip floor, which every hot-path figure sits on: Redis PING p50/p99 from
 * an idle machine, then the same while a worker thread keeps one CPU busy. On a VM whose idle
 * vCPUs sleep, each round trip pays the wake-up of the side it waits for; a busy CPU does not
 * sleep. The difference between the two rows is that wake-up cost, not engram's: it is why
 * bench:enqueue's absolute figures move several-fold between sessions on the same kind of machine.
 */
import { Worker } from 'node:worker_threads';
import { Redis } from 'ioredis';
import { flag, now, summarize, table } from './stats.js';

const N = flag('n', 5_000);
const ROUNDS = flag('rounds', 3);
const redis = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379');
for (let i = 0; i < 500; i++) await redis.ping();

async function pings(): Promise<number[]> {
  const samples: number[] = [];
  for (let i = 0; i < N; i++) {
    const t = now();
    await redis.ping();
    samples.push(now() - t);
  }
  return samples;
}

const rows: Record<string, string>[] = [];
const ms = (x: number) => `${(x * 1000).toFixed(0)} us`;
for (let round = 1; round <= ROUNDS; round++) {
  const idle = summarize(await pings());
  rows.push({ round: String(round), machine: 'idle', p50: ms(idle.p50), p99: ms(idle.p99) });
  // A spinning thread in this process: one CPU stays awake while the main thread pings.
  const spinner = new Worker('for (;;) {}', { eval: true });
  await new Promise((resolve) => spinner.once('online', resolve));
  const busy = summarize(await pings());
  await spinner.terminate();
  rows.push({ round: String(round), machine: 'one CPU kept busy', p50: ms(busy.p50), p99: ms(busy.p99) });
}
table(rows);
redis.disconnect();
