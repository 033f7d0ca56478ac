import type { Db } from './db.js';
import { filterSql, type FilterClause } from './filter.js';
import { alive, namespaceFromJson, Params, prefixCondition, suffixCondition, type Tables } from './sql.js';
import type { MemoryItem, Namespace, SearchItem } from './types.js';

export const COLUMNS = 'm.namespace, m.key, m.kind, m.value, m.version, m.created_at, m.updated_at, m.expires_at';

export interface SearchQuery {
  prefix: Namespace;
  vector?: number[] | undefined;
  filter: FilterClause[];
  limit: number;
  offset: number;
  /** Rank exactly even where the ANN index could be used. */
  exact?: boolean | undefined;
}

export interface SearchSettings {
  /** Prefixes with at most this many items are ranked exactly even when an ANN index exists. */
  exactSearchMax: number;
  /** hnsw.ef_search floor for ANN searches (raised to the number of rows fetched). */
  efSearch: number;
}

/** Items by (namespace, key), in the order asked; null for a missing or expired one. */
export async function getItems(db: Db, t: Tables, refs: { namespace: Namespace; key: string }[]): Promise<(MemoryItem | null)[]> {
  if (refs.length === 0) return [];
  const res = await db.query(
    `select r.idx::int as idx, ${COLUMNS}
       from unnest($1::text[], $2::text[]) with ordinality as r(j, key, idx)
       join ${t.memories} m on m.namespace = ${namespaceFromJson('r.j')} and m.key = r.key
      where ${alive('m')}`,
    [refs.map((r) => JSON.stringify(r.namespace)), refs.map((r) => r.key)],
  );
  const found = new Map(res.rows.map((r) => [Number(r.idx), toItem(r)]));
  return refs.map((_, i) => found.get(i + 1) ?? null);
}

/** Whether the HNSW index exists and is valid (a failed CONCURRENTLY build leaves an invalid one). */
export async function annIndexExists(db: Db, t: Tables): Promise<boolean> {
  const res = await db.query<{ ann: boolean }>(`select exists (select 1 from pg_index i where i.indexrelid = to_regclass($1) and i.indisvalid) as ann`, [t.annIndex]);
  return !!res.rows[0]?.ann;
}

/**
 * How a prefix search will rank: exactly, or through the HNSW index when it exists and the
 * prefix holds more than `exactSearchMax` items in more than one namespace.
 */
export async function searchPlan(db: Db, t: Tables, q: SearchQuery, s: SearchSettings, hasAnnIndex: () => Promise<boolean>): Promise<'exact' | 'ann' | 'filter'> {
  if (!q.vector) return 'filter';
  if (q.exact || !(await hasAnnIndex())) return 'exact';
  const params = new Params();
  const res = await db.query(
    `select count(*) filter (where n.items > 0) as namespaces, coalesce(sum(n.items), 0) as items
       from ${t.namespaces} n where ${prefixCondition('n.namespace', q.prefix, params)}`,
    params.values,
  );
  const row = res.rows[0] as { namespaces: unknown; items: unknown };
  // One namespace is always ranked exactly, however large (a user's search must be the true top-k).
  return Number(row.namespaces) > 1 && Number(row.items) > s.exactSearchMax ? 'ann' : 'exact';
}

export async function searchItems(db: Db, t: Tables, q: SearchQuery, s: SearchSettings, hasAnnIndex: () => Promise<boolean>): Promise<SearchItem[]> {
  const plan = await searchPlan(db, t, q, s, hasAnnIndex);
  if (plan === 'filter') return filterOnly(db, t, q);
  if (plan === 'exact') return exact(db, t, q);
  return ann(db, t, q, s);
}

/**
 * Exact ranking: every vector under the prefix (a btree range on the primary key), best field
 * per item. No ANN index sits between the filter and the ranking, so the top-k is the true
 * top-k and `offset` pages through every result.
 */
async function exact(db: Db, t: Tables, q: SearchQuery): Promise<SearchItem[]> {
  const p = new Params();
  const vec = p.add(db.vectorParam(q.vector as number[]));
  const res = await db.query(
    // Distances are computed in a materialized CTE so that grouping sorts (namespace, key,
    // distance) rows, not rows that still carry their vectors (at 1,536 dims those spill to disk).
    `with d as materialized (
       select v.namespace, v.key, v.embedding <=> ${vec}::vector as distance
         from ${t.vectors} v where ${prefixCondition('v.namespace', q.prefix, p)}),
     best as (select namespace, key, min(distance) as distance from d group by namespace, key)
     select ${COLUMNS}, best.distance from best join ${t.memories} m on m.namespace = best.namespace and m.key = best.key
      where ${alive('m')} and ${filterSql(q.filter, 'm.value', p)}
      order by best.distance, m.namespace, m.key limit ${p.add(q.limit)} offset ${p.add(q.offset)}`,
    p.values,
  );
  return res.rows.map(scored);
}

/**
 * Approximate ranking for large prefixes, through the HNSW index with pgvector's iterative scan
 * (so filters do not starve the result). The index ranks vectors, not items: `MIN(distance)
 * GROUP BY` over the index cannot use it (LESSONS: LangGraph JS), so the index scan returns the
 * nearest vectors and items are formed from them afterwards. An item's best field comes first
 * in distance order, so `want` distinct items are exact once the fetched rows hold `want`
 * distinct keys; with several fields per item the fetch doubles until they do.
 */
async function ann(db: Db, t: Tables, q: SearchQuery, s: SearchSettings): Promise<SearchItem[]> {
  const want = q.offset + q.limit;
  for (let fetch = want * 2; ; fetch *= 4) {
    const p = new Params();
    const vec = p.add(db.vectorParam(q.vector as number[]));
    const sql = `
      with a as materialized (
        select v.namespace, v.key, v.embedding <=> ${vec}::vector as distance
          from ${t.vectors} v join ${t.memories} m on m.namespace = v.namespace and m.key = v.key
         where ${prefixCondition('v.namespace', q.prefix, p)} and ${alive('m')} and ${filterSql(q.filter, 'm.value', p)}
         order by v.embedding <=> ${vec}::vector limit ${p.add(fetch)}),
      c as (select namespace, key, min(distance) as distance from a group by namespace, key)
      select ${COLUMNS}, c.distance, (select count(*) from a) as fetched
        from c join ${t.memories} m on m.namespace = c.namespace and m.key = c.key
       order by c.distance, m.namespace, m.key limit ${p.add(q.limit)} offset ${p.add(q.offset)}`;
    const rows = await db.transaction(async (tx) => {
      await tx.query(`select set_config('hnsw.ef_search', $1, true), set_config('hnsw.iterative_scan', 'relaxed_order', true)`, [
        String(Math.min(1000, Math.max(s.efSearch, fetch))),
      ]);
      return (await tx.query(sql, p.values)).rows;
    });
    const fetched = Number(rows[0]?.fetched ?? 0);
    // Fewer rows than asked means the prefix has no more: the result is complete.
    if (rows.length >= q.limit || fetched < fetch || fetch >= 10_000) return rows.map(scored);
  }
}

/** A search without a query: filtered items, most recently updated first. */
async function filterOnly(db: Db, t: Tables, q: SearchQuery): Promise<SearchItem[]> {
  const p = new Params();
  const res = await db.query(
    `select ${COLUMNS}, null as distance from ${t.memories} m
      where ${prefixCondition('m.namespace', q.prefix, p)} and ${alive('m')} and ${filterSql(q.filter, 'm.value', p)}
      order by m.updated_at desc, m.namespace, m.key limit ${p.add(q.limit)} offset ${p.add(q.offset)}`,
    p.values,
  );
  return res.rows.map(scored);
}

export interface ListNamespacesQuery {
  prefix?: Namespace | undefined;
  suffix?: Namespace | undefined;
  maxDepth?: number | undefined;
  limit: number;
  offset: number;
}

/** Namespaces holding at least one live item, truncated to `maxDepth` labels, sorted byte-wise. */
export async function listNamespaces(db: Db, t: Tables, q: ListNamespacesQuery): Promise<Namespace[]> {
  const p = new Params();
  const where = ['n.items > 0', `exists (select 1 from ${t.memories} m where m.namespace = n.namespace and ${alive('m')})`];
  if (q.prefix) where.push(prefixCondition('n.namespace', q.prefix, p));
  if (q.suffix) where.push(suffixCondition('n.namespace', q.suffix, p));
  const ns = q.maxDepth ? `n.namespace[1:${p.add(q.maxDepth)}::int]` : 'n.namespace';
  const res = await db.query<{ ns: Namespace }>(
    `select distinct ${ns} as ns from ${t.namespaces} n where ${where.join(' and ')}
      order by ns limit ${p.add(q.limit)} offset ${p.add(q.offset)}`,
    p.values,
  );
  return res.rows.map((r) => r.ns);
}

export function toItem(r: Record<string, unknown>): MemoryItem {
  return {
    namespace: r.namespace as Namespace,
    key: r.key as string,
    kind: r.kind as string,
    value: r.value as Record<string, unknown>,
    version: Number(r.version),
    createdAt: r.created_at as Date,
    updatedAt: r.updated_at as Date,
    expiresAt: (r.expires_at as Date | null) ?? null,
  };
}

function scored(r: Record<string, unknown>): SearchItem {
  return { ...toItem(r), score: r.distance === null || r.distance === undefined ? null : 1 - Number(r.distance) };
}
