/**
 * Consolidation benchmark (a script, not a test): the candidate read of one pass, the changed
 * memories of a namespace with the nearest neighbours of each (one statement), on a namespace of
 * P memories of which C changed since its last pass; beside a `select 1` round trip and an exact
 * per-namespace search measured in the same run. No model is called (the model's time is not
 * the store's). The figures in docs/performance.md:
 *   npm run bench:consolidate -- --per 1000 --changed 100 --dims 1536
 *   npm run bench:consolidate -- --per 10000 --changed 10 --dims 1536
 *   npm run bench:consolidate -- --per 10000 --changed 100 --dims 1536 [--ann]
 * `--ann` builds the optional HNSW index first (`npm run store:ann-index`).
 */
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { createLogger } from '../src/observability/logger.js';
import { DEFAULT_MERGE_LIMITS, groupCandidates } from '../src/memory/consolidate.js';
import { MemoryDb } from '../src/store/memory-db.js';
import { migrate } from '../src/store/migrate.js';
import { createPgDb } from '../src/store/pool.js';
import { StoreService } from '../src/store/store-service.js';
import { BenchData } from './data.js';
import { int, ms, percentile, table, time } from './stats.js';
import { tables } from '../src/store/sql.js';

const { values: a } = parseArgs({
  options: {
    per: { type: 'string', default: '1000' },
    changed: { type: 'string', default: '100' },
    dims: { type: 'string', default: '256' },
    topics: { type: 'string', default: '64' },
    distance: { type: 'string', default: '0.2' },
    runs: { type: 'string', default: '20' },
    ann: { type: 'boolean', default: false },
    'database-url': { type: 'string', default: process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test' },
  },
});
const P = Number(a.per);
const C = Number(a.changed);
const D = Number(a.dims);
const RUNS = Number(a.runs);
const log = createLogger({ level: 'warn' });
const schema = `bench_${randomBytes(3).toString('hex')}`;
// No statement timeout: the exact reads at 10,000 memories and `analyze` may outlast 30 s.
const db = createPgDb(a['database-url'], 4, log, { queryTimeoutMs: 0 });
const data = new BenchData(1, P, D, Number(a.topics));
const memories = new MemoryDb(db, schema, log);
const store = new StoreService(memories, {
  embedder: data,
  indexFields: ['content'],
  defaultTtlMs: null,
  refreshTtlOnRead: false,
  defaultKind: 'memory',
  actor: 'bench',
  log,
});
const namespace = ['bench', 'u0'];

async function main() {
  process.stdout.write(
    `engram consolidation benchmark: one namespace of ${int(P)} memories x ${D} dims, ${int(C)} changed since its last pass, schema ${schema}\n`,
  );
  await migrate(db, { schema, dimensions: D, log });
  data.generate();
  const put = (i: number) => ({
    op: 'put' as const,
    namespace,
    key: `m${i}`,
    value: { content: data.memoryText(0, i) },
  });
  for (let i = 0; i < P; i += 500)
    await store.batch(Array.from({ length: Math.min(500, P - i) }, (_, j) => put(i + j)));
  await db.query(`update ${tables(memories.schema).namespaces} set consolidated_at = now()`);
  if (a.ann) await memories.createAnnIndex({ maintenanceWorkMem: '1GB' });
  await db.query('analyze');
  // C memories changed since: re-put, each as its own write, as reflections and apps write.
  for (let i = 0; i < C; i++) {
    const { op: _, ...item } = put(i * Math.floor(P / C));
    await store.put(item);
  }
  const [ns] = await memories.changedNamespaces(10);
  if (!ns) throw new Error('the namespace should show as changed');

  const q = {
    namespace,
    kinds: ['memory'],
    since: ns.since,
    maxDistance: Number(a.distance),
    changedLimit: DEFAULT_MERGE_LIMITS.changedPerNamespace,
    neighbours: DEFAULT_MERGE_LIMITS.neighbours,
  };
  const candidates = await memories.nearDuplicateCandidates(q); // warm-up, and the shape of one pass
  const grouped = groupCandidates(candidates.changed, DEFAULT_MERGE_LIMITS);
  const sample = async (fn: () => Promise<unknown>) => {
    const out: number[] = [];
    for (let i = 0; i < RUNS; i++) out.push((await time(fn)).ms);
    return out;
  };
  const query = (await data.embed([`q t1 s1`]))[0] as number[];
  const rows = [
    ['select 1 (round trip)', await sample(() => db.query('select 1'))],
    [
      'exact search, one query, top 10 (scale)',
      await sample(() =>
        memories.search({ scope: { namespaces: [namespace] }, vector: query, filter: [], limit: 10, offset: 0 }),
      ),
    ],
    [
      `candidate read of one pass (${int(candidates.changed.length)} changed)`,
      await sample(() => memories.nearDuplicateCandidates(q)),
    ],
  ] as const;
  table(
    rows.map(([measure, s]) => ({ measure, runs: s.length, p50: ms(percentile(s, 50)), p95: ms(percentile(s, 95)) })),
  );
  const pairs = candidates.changed.reduce((n, m) => n + m.near.length, 0);
  process.stdout.write(
    `\nOne pass read ${int(candidates.changed.length)} changed memories and found ${int(pairs)} neighbours within ${a.distance}; ` +
      `grouped into ${grouped.groups.length} groups of at most ${DEFAULT_MERGE_LIMITS.maxGroupSize}${grouped.taken < candidates.changed.length ? ', stopping at a bound (the rest wait for the next pass)' : ''}.\n`,
  );
}

main()
  .finally(async () => {
    await db.query(`drop schema if exists "${schema}" cascade`).catch(() => undefined);
    await db.close();
  })
  .catch((err: unknown) => {
    process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
    process.exitCode = 1;
  });
