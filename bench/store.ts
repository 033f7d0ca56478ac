/**
 * Store benchmark (a script, not a test): loads U namespaces x M memories with deterministic
 * D-dimensional embeddings through the store API, then reports put throughput, per-namespace
 * and cross-namespace search latency with recall@10 against brute force, next to a `select 1`
 * round trip measured in the same run, and what a TTL refresh adds to a read (items not due: no
 * statement; due: one UPDATE). Small defaults for a quick run; docs/performance.md's figures:
 *   npm run bench:store -- --namespaces 2000 --per 100 --dims 1536
 */
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { createLogger } from '../src/observability/logger.js';
import type { Db } from '../src/store/db.js';
import { MemoryDb } from '../src/store/memory-db.js';
import { migrate } from '../src/store/migrate.js';
import { createPgliteDb } from '../src/store/pglite.js';
import { createPgDb } from '../src/store/pool.js';
import { StoreService } from '../src/store/store-service.js';
import { observedDb } from '../test/helpers/backends.js';
import { BenchData } from './data.js';
import { int, line, ms, percentile, recall, time } from './stats.js';
import { tables } from '../src/store/sql.js';

const { values: a } = parseArgs({
  options: {
    namespaces: { type: 'string', default: '50' },
    per: { type: 'string', default: '100' },
    dims: { type: 'string', default: '256' },
    topics: { type: 'string', default: '256' },
    batch: { type: 'string', default: '500' },
    writers: { type: 'string', default: '2' },
    queries: { type: 'string', default: '200' },
    'cross-queries': { type: 'string', default: '20' },
    'no-ann': { type: 'boolean', default: false },
    pglite: { type: 'boolean', default: false },
    'database-url': { type: 'string', default: process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test' },
    keep: { type: 'boolean', default: false },
    /** Also load the items as halfvec in a second schema and compare (issue 18: half the memory). */
    'compare-half': { type: 'boolean', default: false },
  },
});
const U = Number(a.namespaces);
const M = Number(a.per);
const D = Number(a.dims);
const BATCH = Number(a.batch);
const WRITERS = Number(a.writers);
const log = createLogger({ level: 'warn' });
const schema = `bench_${randomBytes(3).toString('hex')}`;
// No statement timeout: the load and `analyze` at a million items outlast the service's 30 s.
const db: Db = a.pglite
  ? createPgliteDb('memory://', log)
  : createPgDb(a['database-url'], WRITERS + 2, log, { queryTimeoutMs: 0 });
const data = new BenchData(U, M, D, Number(a.topics));
const memories = new MemoryDb(db, schema, log);
const storeOver = (m: MemoryDb) =>
  new StoreService(m, {
    embedder: data,
    indexFields: ['content'],
    defaultTtlMs: null,
    refreshTtlOnRead: true,
    defaultKind: 'memory',
    actor: 'bench',
    log,
  });
const store = storeOver(memories);
const ns = (u: number) => ['bench', `u${u}`];
const id = (item: { namespace: string[]; key: string }) => `${item.namespace[1]}/${item.key}`;
const idOf = (n: number) => `u${Math.floor(n / M)}/m${n % M}`;

async function main() {
  process.stdout.write(
    `engram store benchmark: ${db.backend}, ${int(U)} namespaces x ${int(M)} memories x ${D} dims (${int(U * M)} items), ` +
      `${a.topics} topics, batches of ${BATCH}, ${WRITERS} writers, schema ${schema}\n`,
  );
  await migrate(db, { schema, dimensions: D, log });
  const gen = await time(async () => data.generate());
  line('embeddings generated (not timed below)', `${int(U * M)} in ${(gen.ms / 1000).toFixed(1)} s`);

  const rtt: number[] = [];
  for (let i = 0; i < 500; i++) rtt.push((await time(() => db.query('select 1'))).ms);
  line('baseline: select 1 round trip', `p50 ${ms(percentile(rtt, 50))}  p95 ${ms(percentile(rtt, 95))}`);

  const load = await time(() => loadAll());
  line(
    `put, batched (${BATCH}/batch, ${WRITERS} writers)`,
    `${int((U * M) / (load.ms / 1000))} items/s  (${int(U * M)} items in ${(load.ms / 1000).toFixed(1)} s)`,
  );
  await settle(memories.schema);

  const single: number[] = [];
  for (let i = 0; i < 200; i++)
    single.push(
      (
        await time(() =>
          store.put({
            namespace: ['bench-single', `u${i % 20}`],
            key: `s${i}`,
            value: { content: `t1 u999999 i${i}` },
            index: ['content'],
          }),
        )
      ).ms,
    );
  line('put, one item per call', `p50 ${ms(percentile(single, 50))}  p95 ${ms(percentile(single, 95))}`);

  const vectorP95 = await perNamespace('search, one namespace (exact)');
  const hybridP95 = await perNamespace('search, one namespace, hybrid (vector + text, RRF)', 'hybrid');
  line('  hybrid p95 / vector p95 (target at most 1.5)', (hybridP95 / vectorP95).toFixed(2));
  await perNamespace('search, one namespace, text only', 'text');
  if (a['compare-half']) await compareHalf();
  await ttlReads();
  const exactCross = await cross('search, all namespaces, exact', Math.min(Number(a['cross-queries']), 10), true);
  if (a['no-ann']) return;

  const build = await time(() => memories.createAnnIndex({ maintenanceWorkMem: '2GB' }));
  line('HNSW index build (m 16, ef_construction 64)', `${(build.ms / 1000).toFixed(1)} s`);
  // The service ranks prefixes under STORE_EXACT_SEARCH_MAX items exactly; force the index here.
  memories.searchSettings.exactSearchMax = 0;
  const plan = await memories.searchPlan({
    scope: { prefix: ['bench'] },
    vector: (await data.embed(['q t1 s1']))[0],
    filter: [],
    limit: 10,
    offset: 0,
  });
  if (plan !== 'ann') throw new Error(`expected the ANN plan for a cross-namespace search, got ${plan}`);
  await cross('search, all namespaces, HNSW (ef_search 100)', Number(a['cross-queries']), false);
  line('  (exact cross-namespace p50 for comparison)', ms(exactCross));
  await perNamespace('search, one namespace, HNSW index present');
  const extra = 2_000;
  const withIndex = await time(async () => {
    for (let i = 0; i < extra; i += BATCH) {
      await store.batch(
        Array.from({ length: Math.min(BATCH, extra - i) }, (_, j) => ({
          op: 'put' as const,
          namespace: ['bench-extra', `u${(i + j) % 100}`],
          key: `e${i + j}`,
          value: { content: `t${(i + j) % 7} u${U + 1} i${i + j}` },
          index: ['content'],
        })),
      );
    }
  });
  line('put, batched, HNSW index present', `${int(extra / (withIndex.ms / 1000))} items/s  (${int(extra)} items)`);
}

/**
 * What the server does on its own after a bulk load, done before the searches are timed, so that
 * they measure a settled store, not the load's aftermath: statistics (without them the planner
 * guesses one row per namespace range); the vacuum that marks the new rows visible to all,
 * without which the first searches of each namespace write hint bits on every page they read
 * (autovacuum's work, whether or not the server runs it); and a checkpoint, so that the pages
 * the load and the vacuum dirtied are not being written out meanwhile. A checkpoint needs a
 * superuser or pg_checkpoint; without one the run goes on, and says so.
 */
async function settle(s: string) {
  const t = tables(s);
  await db.exec(`vacuum (analyze) ${t.memories}, ${t.vectors}, ${t.namespaces}, ${t.history}`);
  await db.exec('checkpoint').catch((err: Error) => line('checkpoint after the load', `skipped: ${err.message}`));
}

/**
 * The same items in a second schema made with STORE_VECTOR_STORAGE=half (pgvector's halfvec):
 * per-namespace search and recall@10 beside float storage, and what each vectors table takes.
 */
async function compareHalf() {
  const half = `${schema}_half`;
  await migrate(db, { schema: half, dimensions: D, log, vectorStorage: 'half' });
  try {
    const halfStore = storeOver(new MemoryDb(db, half, log));
    const load = await time(() => loadAll(halfStore));
    line('half: put, batched', `${int((U * M) / (load.ms / 1000))} items/s`);
    await settle(half);
    await perNamespace('half: search, one namespace (exact)', 'vector', halfStore);
    const size = async (s: string) =>
      Number(
        (await db.query<{ n: unknown }>(`select pg_total_relation_size($1) as n`, [tables(s).vectors])).rows[0]?.n,
      );
    line(
      'vectors table, float / half',
      `${int((await size(schema)) / 2 ** 20)} MiB / ${int((await size(half)) / 2 ** 20)} MiB`,
    );
  } finally {
    if (!a.keep) await db.exec(`drop schema if exists "${half}" cascade`);
  }
}

/** Items arrive interleaved across users (as memories do over time), BATCH per store.batch call. */
async function loadAll(into = store) {
  let next = 0;
  const total = U * M;
  const writer = async () => {
    for (;;) {
      const start = next;
      if (start >= total) return;
      next = Math.min(total, start + BATCH);
      const ops = [];
      for (let n = start; n < next; n++) {
        const u = n % U;
        const i = Math.floor(n / U);
        ops.push({
          op: 'put' as const,
          namespace: ns(u),
          key: `m${i}`,
          value: { content: data.memoryText(u, i), topic: data.topicOf(u, i), i },
          index: ['content'],
        });
      }
      await into.batch(ops);
    }
  };
  await Promise.all(Array.from({ length: WRITERS }, writer));
}

/** Per-namespace searches in `mode`; prints p50, p95 and recall@10 against brute force; returns p95. */
async function perNamespace(
  what: string,
  mode: 'vector' | 'hybrid' | 'text' = 'vector',
  over = store,
): Promise<number> {
  const lat: number[] = [];
  let r = 0;
  const Q = Number(a.queries);
  for (let q = 0; q < Q; q++) {
    const u = (q * 7919) % U;
    const text = `q t${q % data.topics} s${q}`;
    const { ms: t, result } = await time(() => over.search({ namespacePrefix: ns(u), query: text, limit: 10, mode }));
    lat.push(t);
    const [vector] = await data.embed([text]);
    r += recall(result.map(id), data.topK(vector as number[], 10, u, u + 1).map(idOf));
  }
  line(
    what,
    // recall@10 is against the vector truth: for hybrid and text it says how far they move from it.
    `p50 ${ms(percentile(lat, 50))}  p95 ${ms(percentile(lat, 95))}  recall@10 ${(r / Q).toFixed(3)}  (${Q} queries, ${M} items each)`,
  );
  return percentile(lat, 95);
}

/**
 * Reads of items with a TTL, without refresh, with refresh while not due (the common read: the
 * item was refreshed within the last 1% of its TTL; every item is renewed before such a run)
 * and with refresh of items made due before each read (untimed), so each timed read renews what
 * it returns. Each row counts the refresh statements its reads sent.
 */
async function ttlReads() {
  const n = 200;
  const namespace = ['bench-ttl', 'u0'];
  const hour = 3_600_000;
  // The store over a connection that counts refresh statements (refresh-ttl.ts's UPDATE).
  let refreshes = 0;
  const counting = observedDb(db, (text) => {
    if (text.startsWith('with due as')) refreshes++;
  });
  const ttlStore = storeOver(new MemoryDb(counting, schema, log));
  await ttlStore.batch(
    Array.from({ length: n }, (_, i) => ({
      op: 'put' as const,
      namespace,
      key: `t${i}`,
      value: { content: data.memoryText(0, i) },
      ttl: hour,
      index: ['content'],
    })),
  );
  const setExpiry = (expiry: string) =>
    db.query(`update ${tables(memories.schema).memories} set expires_at = ${expiry} where namespace = $1`, [namespace]);
  const run = async (what: string, read: (i: number) => Promise<unknown>, due: boolean) => {
    if (!due) await setExpiry(`now() + ttl_ms * interval '1 millisecond'`);
    refreshes = 0;
    const lat: number[] = [];
    for (let i = 0; i < n; i++) {
      if (due) await setExpiry(`now() + interval '1 minute'`);
      lat.push((await time(() => read(i))).ms);
    }
    line(
      what,
      `p50 ${ms(percentile(lat, 50))}  p95 ${ms(percentile(lat, 95))}  (${n} reads, ${refreshes} refresh statements)`,
    );
  };
  const get = (refreshTtl: boolean) => (i: number) => ttlStore.get({ namespace, key: `t${i}`, refreshTtl });
  const search = (refreshTtl: boolean) => (i: number) =>
    ttlStore.search({ namespacePrefix: namespace, query: `q t${i % data.topics} s${i}`, limit: 10, refreshTtl });
  await run('get, TTL item, refreshTtl false', get(false), false);
  await run('get, TTL item, refresh not due', get(true), false);
  await run('get, TTL item, refresh due (1 UPDATE)', get(true), true);
  await run('search 10 of 200 TTL items, refreshTtl false', search(false), false);
  await run('search 10 of 200 TTL items, refresh not due', search(true), false);
  await run('search 10 of 200 TTL items, refresh due', search(true), true);
}

/** Returns the p50. */
async function cross(what: string, Q: number, exact: boolean): Promise<number> {
  const lat: number[] = [];
  let r = 0;
  for (let q = 0; q < Q; q++) {
    const text = `q t${(q * 31) % data.topics} s${100_000 + q}`;
    const { ms: t, result } = await time(() =>
      store.search({ namespacePrefix: ['bench'], query: text, limit: 10, exact }),
    );
    lat.push(t);
    const [vector] = await data.embed([text]);
    r += recall(result.map(id), data.topK(vector as number[], 10).map(idOf));
  }
  line(
    what,
    `p50 ${ms(percentile(lat, 50))}  p95 ${ms(percentile(lat, 95))}  recall@10 ${(r / Q).toFixed(3)}  (${Q} queries over ${int(U * M)} items)`,
  );
  return percentile(lat, 50);
}

try {
  await main();
} finally {
  if (!a.keep && db.backend === 'postgres') await db.exec(`drop schema if exists "${schema}" cascade`);
  await db.close();
}
