/**
 * The baselines and the throughput phase of `bench:pipeline`. Not part of the product.
 */
import type { Redis } from 'ioredis';
import type pg from 'pg';
import type { Http } from './pipeline-http.js';
import { epoch, sleep, turnBody } from './pipeline-load.js';
import { now } from './stats.js';

export interface Baselines {
  ping: number[];
  select1: number[];
  healthz: number[];
}

/** One PING, one `select 1` and one GET /healthz in turn, `n` times (the idle floor). */
export async function measureBaselines(redis: Redis, db: pg.Pool, http: Http, n: number): Promise<Baselines> {
  const b: Baselines = { ping: [], select1: [], healthz: [] };
  for (let i = 0; i < n; i++) await sampleOnce(redis, db, http, b);
  return b;
}

/** The same floors sampled every `everyMs` while the load runs: the machine as the load left it. */
export function sampleBaselines(redis: Redis, db: pg.Pool, http: Http, everyMs: number) {
  const b: Baselines = { ping: [], select1: [], healthz: [] };
  let on = true;
  const loop = (async () => {
    while (on) {
      // A failed sample (the API stopping on Ctrl-C) ends the sampling, not the bench.
      if (
        !(await sampleOnce(redis, db, http, b).then(
          () => true,
          () => false,
        ))
      )
        return;
      await sleep(everyMs);
    }
  })();
  return {
    async stop(): Promise<Baselines> {
      on = false;
      await loop;
      return b;
    },
  };
}

async function sampleOnce(redis: Redis, db: pg.Pool, http: Http, b: Baselines) {
  let t = now();
  await redis.ping();
  b.ping.push(now() - t);
  t = now();
  await db.query('select 1');
  b.select1.push(now() - t);
  t = now();
  await http.health();
  b.healthz.push(now() - t);
}

export interface BurstResult {
  sessions: number;
  /** Reflections per second from the first turn's due time to the last commit. */
  overall: number;
  /** The same between 10 % and 90 % of the commits: the steady rate, without ramp-up and tail. */
  steady: number;
  seconds: number;
  committed: number;
}

/**
 * Capacity: `n` one-turn sessions sent at once (64 in flight), so that all fall due within a
 * moment of each other and the reflection processes work through a backlog. Commits are counted
 * in the store's thread cursors (one row per reflected thread, written in the commit).
 */
export async function burst(
  http: Http,
  db: pg.Pool,
  schema: string,
  tag: string,
  n: number,
  debounceMs: number,
  giveUpMs: number,
): Promise<BurstResult> {
  let next = 0;
  let first = Number.POSITIVE_INFINITY;
  await Promise.all(
    Array.from({ length: 64 }, async () => {
      while (next < n) {
        const sid = `${tag}-${next++}`;
        await http.turn(sid, turnBody(sid, 1));
        first = Math.min(first, epoch());
      }
    }),
  );
  const t0 = first + debounceMs;
  const marks: { p10?: number; p90?: number; all?: number } = {};
  let committed = 0;
  while (epoch() < t0 + giveUpMs) {
    const { rows } = await db.query<{ n: string }>(
      `select count(*) as n from "${schema}".thread_cursors where thread_id like $1`,
      [`${tag}-%`],
    );
    committed = Number(rows[0]?.n ?? 0);
    const t = epoch();
    if (committed >= 0.1 * n) marks.p10 ??= t;
    if (committed >= 0.9 * n) marks.p90 ??= t;
    if (committed >= n) {
      marks.all = t;
      break;
    }
    await sleep(25);
  }
  const end = marks.all ?? epoch();
  const steady = marks.p10 && marks.p90 && marks.p90 > marks.p10 ? (0.8 * n) / ((marks.p90 - marks.p10) / 1000) : NaN;
  return { sessions: n, overall: committed / ((end - t0) / 1000), steady, seconds: (end - t0) / 1000, committed };
}
