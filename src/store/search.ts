import { budgeted, type AnswerBudget } from './answer-budget.js';
import { InputError } from '../errors.js';
import type { Db } from './db.js';
import type { FilterClause } from './filter.js';
import { COLUMNS, scored, VALUE_BYTES } from './read-items.js';
import { bestPerItem, vectorDistances } from './knn.js';
import { fuse } from './fuse.js';
import { itemConditions, type KindsAt } from './search-conditions.js';
import { Params, prefixCondition, scopeCondition, type SearchScope, type Tables } from './sql.js';
import { textRanked } from './text-search.js';
import type { SearchItem } from './types.js';

export type { SearchScope } from './sql.js';

/**
 * How a query ranks: by vector similarity, by its words (full-text, rare words weigh more), or
 * both fused by reciprocal rank (hybrid).
 */
export type SearchMode = 'vector' | 'text' | 'hybrid';

export interface SearchQuery {
  scope: SearchScope;
  /** The query's vector (vector and hybrid). */
  vector?: number[] | undefined;
  /** The query's words (text and hybrid). */
  text?: string | undefined;
  /** Default: `vector` with a vector, `text` with only words; neither: filter only, newest first. */
  mode?: SearchMode | undefined;
  filter: FilterClause[];
  /** Only items of these kinds (all when omitted). */
  kinds?: string[] | undefined;
  /**
   * Only items of these kinds in these namespaces: each kind where it keeps its memories (a
   * recall's kinds), not any of the kinds in any of the namespaces.
   */
  kindsAt?: KindsAt | undefined;
  /** What held at this time (memories invalidated since included, newer ones left out); now when omitted. */
  asOf?: Date | undefined;
  limit: number;
  offset: number;
  /** Rank exactly even where the ANN index could be used. */
  exact?: boolean | undefined;
  /** Hybrid only: newer memories weigh more, by `weight` (0..1) over a half-life of `halfLifeMs`. */
  recency?: { halfLifeMs: number; weight: number } | undefined;
  /**
   * The bytes the answer may still carry (answer-budget.ts); unbounded without. A hybrid search
   * spends its candidates' too: they are read whole before the fused page is cut.
   */
  budget?: AnswerBudget | undefined;
}

/** `sql` cut at the query's budget when it has one (its rows sorted by `order`), as it is without. */
function withinBudget(q: SearchQuery, sql: string, order: string, p: Params): string {
  return q.budget ? budgeted(sql, order, VALUE_BYTES, p.add(q.budget.remaining)) : sql;
}

export interface SearchSettings {
  /** Prefixes with at most this many items are ranked exactly even when an ANN index exists. */
  exactSearchMax: number;
  /** hnsw.ef_search floor for ANN searches (raised to the number of rows fetched). */
  efSearch: number;
}

/** The SQL that says whether a prefix is large enough for the ANN index (one btree range read). */
function largePrefixSql(t: Tables, q: SearchQuery, s: SearchSettings, p: Params): string {
  // One namespace is always ranked exactly, however large (a user's search must be the true top-k).
  return `(select count(*) filter (where n.items > 0) > 1 and coalesce(sum(n.items), 0) > ${p.add(s.exactSearchMax)}
             from ${t.namespaces} n where ${scopeCondition('n.namespace', q.scope, p)})`;
}

const modeOf = (q: SearchQuery): SearchMode | 'filter' =>
  q.mode ?? (q.vector ? 'vector' : q.text !== undefined ? 'text' : 'filter');

/**
 * How a search will rank its vectors: exactly, or through the HNSW index when it exists and a
 * prefix holds more than `exactSearchMax` items in more than one namespace (a list of
 * namespaces is always ranked exactly).
 */
export async function searchPlan(
  db: Db,
  t: Tables,
  q: SearchQuery,
  s: SearchSettings,
  hasAnnIndex: () => Promise<boolean>,
): Promise<'exact' | 'ann' | 'filter'> {
  if (!q.vector) return 'filter';
  if (q.exact || !('prefix' in q.scope) || !(await hasAnnIndex())) return 'exact';
  const p = new Params();
  const res = await db.query<{ large: boolean }>(`select ${largePrefixSql(t, q, s, p)} as large`, p.values);
  return res.rows[0]?.large ? 'ann' : 'exact';
}

export async function searchItems(
  db: Db,
  t: Tables,
  q: SearchQuery,
  s: SearchSettings,
  hasAnnIndex: () => Promise<boolean>,
): Promise<SearchItem[]> {
  const mode = modeOf(q);
  if (mode === 'filter') return filterOnly(db, t, q);
  if (mode === 'text') return textRanked(db, t, { ...q, text: required(q.text, 'text') });
  if (mode === 'vector') return vectorRanked(db, t, { ...q, vector: required(q.vector, 'vector') }, s, hasAnnIndex);
  // Hybrid: each ranking's top candidates, fused; the page is cut from the fused list. Pages of
  // one limit fuse the same candidates, whatever their offset: a depth that grew with the offset
  // fused another list for each page, and a client paging through saw some items twice and
  // others never. The depth follows the limit only, so a first page of 10 stays as cheap.
  const depth = Math.max(HYBRID_CANDIDATES, q.limit);
  if (q.offset + q.limit > depth)
    throw new InputError(
      `a hybrid search fuses each ranking's best ${depth} (${HYBRID_CANDIDATES}, or the limit when larger): offset + limit may be at most ${depth} (page further with mode "vector" or "text", which rank every item)`,
    );
  const candidates = { ...q, offset: 0, limit: depth };
  const [byVector, byText] = await Promise.all([
    vectorRanked(db, t, { ...candidates, vector: required(q.vector, 'vector') }, s, hasAnnIndex),
    textRanked(db, t, { ...candidates, text: required(q.text, 'text') }),
  ]);
  return fuse([byVector, byText], q.recency).slice(q.offset, q.offset + q.limit);
}

/** Candidates each ranking gives a hybrid search, at least: the deepest page of a small limit. */
export const HYBRID_CANDIDATES = 50;

function required<T>(value: T | undefined, what: string): T {
  if (value === undefined) throw new Error(`this search mode needs the query's ${what}`);
  return value;
}

async function vectorRanked(
  db: Db,
  t: Tables,
  q: SearchQuery & { vector: number[] },
  s: SearchSettings,
  hasAnnIndex: () => Promise<boolean>,
): Promise<SearchItem[]> {
  if (q.exact || !('prefix' in q.scope) || !(await hasAnnIndex())) return (await exact(db, t, q)).items;
  // With the index, the size check and the exact search are one statement (one round trip for
  // the common case, a user's own namespace); a large prefix comes back empty and goes to ANN.
  const gated = await exact(db, t, q, s);
  return gated.large ? ann(db, t, q, s) : gated.items;
}

/**
 * Exact ranking: every vector under the prefix (a btree range on the primary key), best field
 * per item. No ANN index sits between the filter and the ranking, so the top-k is the true
 * top-k and `offset` pages through every result. With `gate`, the scan only runs when the
 * prefix is not large (a one-time filter), and the answer says which it was.
 */
async function exact(
  db: Db,
  t: Tables,
  q: SearchQuery,
  gate?: SearchSettings,
): Promise<{ items: SearchItem[]; large: boolean }> {
  const p = new Params();
  const vec = p.add(db.vectorParam(q.vector as number[]));
  const large = gate ? largePrefixSql(t, q, gate, p) : 'false';
  const res = await db.query(
    withinBudget(
      q,
      `with plan as (select ${large} as large),
     d as materialized (${vectorDistances(t, `${vec}::vector`, `${scopeCondition('v.namespace', q.scope, p)} and not (select large from plan)`)}),
     best as (${bestPerItem('d')}),
     hits as (
       select ${COLUMNS}, best.distance from best join ${t.memories} m on m.namespace = best.namespace and m.key = best.key
        where ${itemConditions(q, p)}
        order by best.distance, m.namespace, m.key limit ${p.add(q.limit)} offset ${p.add(q.offset)})
     select plan.large, hits.* from plan left join hits on true
      order by hits.distance, hits.namespace, hits.key`,
      'distance, namespace, key',
      p,
    ),
    p.values,
  );
  const rows = q.budget ? q.budget.take(res.rows) : res.rows;
  const first = res.rows[0] as { large: boolean } | undefined;
  return { large: !!first?.large, items: rows.filter((r) => r.key !== null && r.key !== undefined).map(scored) };
}

/**
 * Approximate ranking for large prefixes, through the HNSW index with pgvector's iterative scan
 * (so filters do not starve the result). The index ranks vectors, not items: `MIN(distance)
 * GROUP BY` over the index cannot use it (docs/prior-art.md: LangGraph JS), so the index scan returns the
 * nearest vectors and items are formed from them afterwards. An item's best field comes first
 * in distance order, so `want` distinct items are exact once the fetched rows hold `want`
 * distinct keys; with several fields per item the fetch doubles until they do.
 */
async function ann(db: Db, t: Tables, q: SearchQuery, s: SearchSettings): Promise<SearchItem[]> {
  const want = q.offset + q.limit;
  for (let fetch = want * 2; ; fetch *= 4) {
    const p = new Params();
    const vec = p.add(db.vectorParam(q.vector as number[]));
    const prefix = 'prefix' in q.scope ? q.scope.prefix : [];
    const sql = `
      with a as materialized (
        select v.namespace, v.key, v.embedding <=> ${vec}::vector as distance
          from ${t.vectors} v join ${t.memories} m on m.namespace = v.namespace and m.key = v.key
         where ${prefixCondition('v.namespace', prefix, p)} and ${itemConditions(q, p)}
         order by v.embedding <=> ${vec}::vector limit ${p.add(fetch)}),
      c as (${bestPerItem('a')})
      select ${COLUMNS}, c.distance, (select count(*) from a) as fetched
        from c join ${t.memories} m on m.namespace = c.namespace and m.key = c.key
       order by c.distance, m.namespace, m.key limit ${p.add(q.limit)} offset ${p.add(q.offset)}`;
    const cut = withinBudget(q, sql, 'distance, namespace, key', p);
    const rows = await db.transaction(async (tx) => (await tx.queryAndCommit(cut, p.values)).rows, {
      settings: {
        'hnsw.ef_search': String(Math.min(1000, Math.max(s.efSearch, fetch))),
        'hnsw.iterative_scan': 'relaxed_order',
      },
    });
    // Before the completeness check: a page the budget cut is short, not complete (refused, or
    // kept as far as it fits).
    if (q.budget && rows.length && Number(rows.at(-1)?.answer_spent) > q.budget.remaining)
      return q.budget.take(rows).map(scored);
    const fetched = Number(rows[0]?.fetched ?? 0);
    // Fewer rows than asked means the prefix has no more: the result is complete.
    if (rows.length >= q.limit || fetched < fetch || fetch >= 10_000) {
      q.budget?.spend(rows);
      return rows.map(scored);
    }
  }
}

/** A search without a query: filtered items, most recently updated first. */
async function filterOnly(db: Db, t: Tables, q: SearchQuery): Promise<SearchItem[]> {
  const p = new Params();
  const res = await db.query(
    withinBudget(
      q,
      `select ${COLUMNS}, null as distance from ${t.memories} m
      where ${scopeCondition('m.namespace', q.scope, p)} and ${itemConditions(q, p)}
      order by m.updated_at desc, m.namespace, m.key limit ${p.add(q.limit)} offset ${p.add(q.offset)}`,
      'updated_at desc, namespace, key',
      p,
    ),
    p.values,
  );
  return (q.budget ? q.budget.take(res.rows) : res.rows).map(scored);
}
