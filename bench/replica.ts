/**
 * Read-replica benchmark (a script, not a test): loads U namespaces x M memories on the primary,
 * waits for the streaming replica (ops/replica.sh) to replay them, then runs the same store
 * reads (get, one-namespace vector search, recall-style two-namespace hybrid search) with
 * `consistency: 'primary'` and with `'replica'`, at 1 and at C concurrent readers, next to a
 * `select 1` round trip on each server measured in the same run. Also: how long a write takes
 * to become visible on the replica (the lag a reader may see), and what a replica that refuses
 * connections costs the read that finds it down, and the reads after it.
 *
 *   bash ops/replica.sh && npm run bench:replica
 *   npm run bench:replica -- --namespaces 200 --per 100 --dims 1536 --concurrency 16
 *
 * On one machine the primary and the replica share its cores: the figures show what routing
 * costs and what the replica serves, not the capacity a replica on its own host adds.
 */
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import { parseArgs } from 'node:util';
import { createLogger } from '../src/observability/logger.js';
import type { Db } from '../src/store/db.js';
import { MemoryDb, type ReadOptions } from '../src/store/memory-db.js';
import { migrate } from '../src/store/migrate.js';
import { openReadDb } from '../src/store/open.js';
import { createPgDb } from '../src/store/pool.js';
import { tables } from '../src/store/sql.js';
import { StoreService } from '../src/store/store-service.js';
import { BenchData } from './data.js';
import { int, line, ms, percentile, time } from './stats.js';

const { values: a } = parseArgs({
  options: {
    namespaces: { type: 'string', default: '100' },
    per: { type: 'string', default: '100' },
    dims: { type: 'string', default: '256' },
    topics: { type: 'string', default: '256' },
    reads: { type: 'string', default: '2000' },
    concurrency: { type: 'string', default: '8' },
    'lag-samples': { type: 'string', default: '200' },
    'database-url': { type: 'string', default: process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test' },
    'read-url': {
      type: 'string',
      default: process.env.DATABASE_READ_URL ?? 'postgres://postgres@127.0.0.1:5433/test',
    },
  },
});
const U = Number(a.namespaces);
const M = Number(a.per);
const D = Number(a.dims);
const READS = Number(a.reads);
const C = Number(a.concurrency);
const log = createLogger({ level: 'warn' });
const schema = `bench_${randomBytes(3).toString('hex')}`;
const primary = createPgDb(a['database-url'], C + 2, log);
const replica = createPgDb(a['read-url'], 2, log);
const readDb = openReadDb([a['read-url']], primary, C + 2, log) as Db;
const data = new BenchData(U, M, D, Number(a.topics));
const memories = new MemoryDb(primary, schema, log, undefined, readDb);
const storeOver = (m: MemoryDb) =>
  new StoreService(m, {
    embedder: data,
    indexFields: ['content'],
    defaultTtlMs: null,
    refreshTtlOnRead: false,
    defaultKind: 'memory',
    actor: 'bench',
    log,
  });
const store = storeOver(memories);
const ns = (u: number) => ['bench', `u${u}`];

async function main() {
  process.stdout.write(
    `engram read-replica benchmark: ${int(U)} namespaces x ${int(M)} memories x ${D} dims (${int(U * M)} items), ` +
      `${int(READS)} reads per row, schema ${schema}\nprimary ${a['database-url']}, replica ${a['read-url']}\n`,
  );
  const inRecovery = await replica.query<{ r: boolean }>('select pg_is_in_recovery() as r');
  if (!inRecovery.rows[0]?.r) throw new Error(`${a['read-url']} is not a replica: start one with bash ops/replica.sh`);
  await migrate(primary, { schema, dimensions: D, log });
  data.generate();
  const load = await time(() => loadAll());
  await primary.exec(`analyze ${tables(schema).memories}, ${tables(schema).vectors}, ${tables(schema).namespaces}`);
  const replay = await time(() => caughtUp());
  line(
    'loaded on the primary; replica caught up',
    `${int(U * M)} items in ${(load.ms / 1000).toFixed(1)} s; replica ${ms(replay.ms)} behind at the end`,
  );

  for (const [name, db] of [
    ['primary', primary],
    ['replica', replica],
  ] as const) {
    const rtt: number[] = [];
    for (let i = 0; i < 500; i++) rtt.push((await time(() => db.query('select 1'))).ms);
    line(`baseline: select 1 on the ${name}`, `p50 ${ms(percentile(rtt, 50))}  p95 ${ms(percentile(rtt, 95))}`);
  }

  await lag();
  for (const [what, read] of reads) {
    for (const readers of [1, C]) {
      for (const consistency of ['primary', 'replica'] as const) {
        const r = await run(read, { consistency }, readers);
        line(
          `${what}, ${readers} reader${readers > 1 ? 's' : ''}, ${consistency}`,
          `${int(r.perSecond)} reads/s  p50 ${ms(r.p50)}  p95 ${ms(r.p95)}`,
        );
      }
    }
  }
  await downReplica();
}

type Read = (i: number, from: ReadOptions) => Promise<unknown>;
const reads: [string, Read][] = [
  ['get', (i, from) => store.get({ namespace: ns(i % U), key: `m${i % M}`, ...from })],
  [
    'search, one namespace',
    (i, from) => store.search({ namespacePrefix: ns(i % U), query: `q t${i % data.topics} s${i}`, ...from }),
  ],
  [
    'hybrid, two namespaces',
    async (i, from) =>
      memories.search(
        {
          scope: { namespaces: [ns(i % U), ns((i + 1) % U)] },
          vector: (await data.embed([`q t${i % data.topics} s${i}`]))[0],
          text: `t${i % data.topics}`,
          mode: 'hybrid',
          filter: [],
          limit: 10,
          offset: 0,
        },
        from,
      ),
  ],
];

/** READS reads by `readers` concurrent loops; throughput over the whole run, latency per read. */
async function run(read: Read, from: ReadOptions, readers: number) {
  const lat: number[] = [];
  let next = 0;
  const loop = async () => {
    for (let i = next++; i < READS; i = next++) lat.push((await time(() => read(i * 7919, from))).ms);
  };
  for (let i = 0; i < 50; i++) await read(i, from);
  const all = await time(() => Promise.all(Array.from({ length: readers }, loop)));
  return { perSecond: READS / (all.ms / 1000), p50: percentile(lat, 50), p95: percentile(lat, 95) };
}

/** From a put's commit on the primary until a get on the replica returns it (polling every query). */
async function lag() {
  const samples: number[] = [];
  const polls: number[] = [];
  for (let i = 0; i < Number(a['lag-samples']); i++) {
    const key = `lag${i}`;
    await store.put({ namespace: ['bench-lag', 'u0'], key, value: { content: `t1 u${U + 1} i${i}` }, index: false });
    const start = performance.now();
    let n = 0;
    while (!(await memories.get(['bench-lag', 'u0'], key, { consistency: 'replica' }))) n++;
    samples.push(performance.now() - start);
    polls.push(n);
  }
  const seen = await primary.query<{ lag: string | null }>(
    `select coalesce(max(replay_lag)::text, 'none') as lag from pg_stat_replication`,
  );
  line('lag as the primary reports it', `pg_stat_replication.replay_lag ${seen.rows[0]?.lag}`);
  line(
    'lag: put committed -> visible on the replica',
    `p50 ${ms(percentile(samples, 50))}  p95 ${ms(percentile(samples, 95))}  max ${ms(Math.max(...samples))}  ` +
      `(reads that missed it: p50 ${percentile(polls, 50)}, max ${Math.max(...polls)})`,
  );
}

/** A replica that refuses connections: the first read pays for finding out, the rest go to the primary. */
async function downReplica() {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address() as { port: number };
  await new Promise((resolve) => probe.close(resolve));
  // Its warning (the replica is unreachable) is the expected outcome here, not news.
  const quiet = createLogger({ level: 'error' });
  const downDb = openReadDb([`postgres://postgres@127.0.0.1:${port}/test`], primary, 2, quiet) as Db;
  const down = storeOver(new MemoryDb(primary, schema, log, undefined, downDb));
  const first = await time(() => down.get({ namespace: ns(0), key: 'm0' }));
  const after: number[] = [];
  for (let i = 0; i < 200; i++) after.push((await time(() => down.get({ namespace: ns(i % U), key: `m${i % M}` }))).ms);
  line(
    'get, replica refusing connections',
    `first read ${ms(first.ms)} (finds it down), then p50 ${ms(percentile(after, 50))} on the primary`,
  );
  await downDb.close();
}

/** Until the replica has replayed all the primary has written. */
async function caughtUp() {
  const { rows } = await primary.query<{ lsn: string }>('select pg_current_wal_lsn()::text as lsn');
  for (;;) {
    const r = await replica.query<{ ok: boolean }>('select pg_last_wal_replay_lsn() >= $1::pg_lsn as ok', [
      rows[0]?.lsn,
    ]);
    if (r.rows[0]?.ok) return;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

async function loadAll() {
  const total = U * M;
  for (let start = 0; start < total; start += 500) {
    const ops = [];
    for (let n = start; n < Math.min(total, start + 500); n++) {
      const [u, i] = [n % U, Math.floor(n / U)];
      ops.push({
        op: 'put' as const,
        namespace: ns(u),
        key: `m${i}`,
        value: { content: data.memoryText(u, i) },
        index: ['content'],
      });
    }
    await store.batch(ops);
  }
}

try {
  await main();
} finally {
  await primary.exec(`drop schema if exists "${schema}" cascade`).catch(() => undefined);
  await Promise.allSettled([readDb.close(), replica.close(), primary.close()]);
}
