/**
 * Recall benchmark (a script, not a test): `users` users, each with memories of two collection
 * kinds in two namespaces and one profile (three kinds), D-dimensional deterministic embeddings,
 * loaded through the store API. Times recall (hybrid, the default) beside a `select 1` round trip
 * of the same run, with the query's embedding timed apart and left out (a model's time is not
 * engram's). The figure:
 *   npm run bench:recall -- --users 2000 --per 100 --dims 1536
 */
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { defineKind } from '../src/memory/kinds.js';
import { Recall } from '../src/memory/recall.js';
import { createLogger } from '../src/observability/logger.js';
import { MemoryDb } from '../src/store/memory-db.js';
import { migrate } from '../src/store/migrate.js';
import { createPgDb } from '../src/store/pool.js';
import { StoreService } from '../src/store/store-service.js';
import { BenchData } from './data.js';
import { int, line, ms, percentile, time } from './stats.js';

const { values: a } = parseArgs({
  options: {
    users: { type: 'string', default: '100' },
    per: { type: 'string', default: '100' },
    dims: { type: 'string', default: '256' },
    topics: { type: 'string', default: '256' },
    queries: { type: 'string', default: '300' },
    'database-url': { type: 'string', default: process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test' },
  },
});
const U = Number(a.users);
const M = Number(a.per);
const D = Number(a.dims);
const log = createLogger({ level: 'warn' });
const schema = `bench_${randomBytes(3).toString('hex')}`;
// No statement timeout: loading and `analyze` at the scale outlast the service's 30 s.
const db = createPgDb(a['database-url'], 4, log, { queryTimeoutMs: 0 });
// Both collections' memories are generated together: memories get i < M/2, episodes the rest.
const data = new BenchData(U, M, D, Number(a.topics));
const memories = new MemoryDb(db, schema, log);
const content = z.object({ content: z.string() });
const kinds = [
  defineKind({ name: 'memory', description: 'A fact', namespace: ['memories', '{userId}'], schema: content }),
  defineKind({ name: 'episode', description: 'An event', namespace: ['episodes', '{userId}'], schema: content }),
  defineKind({
    name: 'user_profile',
    description: 'Stable facts',
    namespace: ['profiles', '{userId}'],
    mode: 'profile',
    schema: z.object({ name: z.string(), city: z.string() }).partial(),
  }),
];
/** The embedder, timed: recall embeds its query once; that time is printed apart. */
let embedMs = 0;
const timed = {
  dimensions: D,
  async embed(texts: string[]) {
    const t0 = performance.now();
    try {
      return await data.embed(texts);
    } finally {
      embedMs += performance.now() - t0;
    }
  },
};
const store = new StoreService(memories, {
  embedder: data,
  indexFields: ['content'],
  defaultTtlMs: null,
  refreshTtlOnRead: false,
  defaultKind: 'memory',
  actor: 'bench',
  log,
});

async function main() {
  process.stdout.write(
    `engram recall benchmark: postgres, ${int(U)} users x ${int(M)} memories (two kinds) + a profile, ${D} dims, schema ${schema}\n`,
  );
  await migrate(db, { schema, dimensions: D, log });
  data.generate();
  const rtt: number[] = [];
  for (let i = 0; i < 500; i++) rtt.push((await time(() => db.query('select 1'))).ms);
  line('baseline: select 1 round trip', `p50 ${ms(percentile(rtt, 50))}  p95 ${ms(percentile(rtt, 95))}`);

  const load = await time(async () => {
    for (let u = 0; u < U; u++) {
      const ops: Parameters<StoreService['batch']>[0] = Array.from({ length: M }, (_, i) => ({
        op: 'put' as const,
        namespace: [i < M / 2 ? 'memories' : 'episodes', `u${u}`],
        key: `m${i}`,
        kind: i < M / 2 ? 'memory' : 'episode',
        value: { content: data.memoryText(u, i) },
      }));
      ops.push({
        op: 'put' as const,
        namespace: ['profiles', `u${u}`],
        key: 'profile:user_profile',
        kind: 'user_profile',
        value: { name: `u${u}`, city: 'Lisbon' },
        index: false,
      });
      await store.batch(ops);
    }
  });
  line('load (not the figure)', `${int(U * (M + 1))} items in ${(load.ms / 1000).toFixed(1)} s`);
  await db.exec('analyze');

  for (const mode of ['hybrid', 'vector', 'text'] as const) {
    const recall = new Recall(memories, timed, false, () => kinds);
    const lat: number[] = [];
    const embeds: number[] = [];
    const Q = Number(a.queries);
    for (let q = 0; q < Q; q++) {
      embedMs = 0;
      const { ms: t } = await time(() =>
        recall.recall({
          context: { userId: `u${(q * 7919) % U}` },
          query: `q t${q % data.topics} s${q}`,
          mode,
          limit: 10,
        }),
      );
      lat.push(t - embedMs);
      embeds.push(embedMs);
    }
    line(
      `recall, 3 kinds, ${mode}${mode === 'hybrid' ? ' (target p95 <= 15 ms)' : ''}`,
      `p50 ${ms(percentile(lat, 50))}  p95 ${ms(percentile(lat, 95))}  (query embedding apart: p50 ${ms(percentile(embeds, 50))})`,
    );
  }
}

try {
  await main();
} finally {
  await db.query(`drop schema if exists "${schema}" cascade`);
  await db.close();
}
