import type { Db } from './db.js';
import { vectorDistances } from './knn.js';
import { alive, type Tables } from './sql.js';
import type { Namespace } from './types.js';

export interface SnapshotRequest {
  namespace: Namespace;
  /** Collection kinds whose memories are searched. */
  kinds: string[];
  /**
   * The profile kinds, each with its fixed key, loaded whole (profiles are not searched). The
   * key belongs to its kind: a row found there is shown as that profile whatever kind it was
   * stored with (a store put may have labelled it otherwise), so the model patches it and the
   * update relabels it, instead of inserting at a taken key on every attempt.
   */
  profiles: { key: string; kind: string }[];
}

/** A memory as a reflection is shown it. */
export interface SnapshotMemory {
  namespace: Namespace;
  key: string;
  kind: string;
  version: number;
  value: Record<string, unknown>;
}

export interface NamespaceSnapshot {
  namespace: Namespace;
  /** The version the commit will compare against. */
  version: number;
  /** Items in the namespace: whether the next read of it may go through the ANN index. */
  items: number;
  /** Relevant collection memories, most relevant first, at most top-k. */
  memories: SnapshotMemory[];
  /** The live profiles (an expired one is gone, like any expired item, and is created anew). */
  profiles: SnapshotMemory[];
}

type Row = { key: string; kind: string; version: number; value: Record<string, unknown> };

/**
 * Everything a reflection reads before asking the model, in ONE statement: namespace versions,
 * the relevant memories and the profiles. One statement is one snapshot, so the versions are
 * exactly those of the memories shown to the model (a commit in between cannot slip past the
 * compare-and-set), and it is one round trip instead of one per query and namespace.
 *
 * Relevance: each query vector (a recent turn) gets its k nearest memories of the searched kinds,
 * taken from the namespace's 3k nearest vectors (so fewer than k when most of those belong to
 * other kinds, expired items or second fields of one memory), then the lists are merged
 * round-robin (everyone's best before anyone's second best), deduplicated and cut to k. Taking
 * the k nearest to any query instead would let one chatty turn crowd out the memories every
 * other turn needs.
 *
 * It only reads, and never refreshes TTLs (unlike the store API's get and search): a background
 * job looking at memories is not the application recalling them, and since every reflection
 * looks at the memories nearest its turns, refreshing here would keep whatever a chatty thread
 * resembles alive for ever. A reflection renews a TTL only when it rewrites the memory.
 */
export async function readSnapshot(
  db: Db,
  t: Tables,
  requests: SnapshotRequest[],
  vectors: number[][],
  topK: number,
  /** Per request: rank through the HNSW index (a namespace past the exact-search size). */
  approximate: boolean[] = [],
  efSearch = 100,
): Promise<NamespaceSnapshot[]> {
  const params = [
    JSON.stringify(requests.map((r, i) => ({ ...r, ann: approximate[i] === true }))),
    await db.vectorArrayParam(vectors),
    topK,
  ];
  type Result = { version: unknown; items: unknown; memories: Row[]; profiles: Row[] };
  const res = approximate.some(Boolean)
    ? // The iterative scan keeps reading the index until enough vectors of the namespace pass
      // the filter (pgvector 0.8); settings local to this transaction. Sequential scans off: the
      // planner would read a small table whole and sort it rather than walk the index, and no
      // part of this statement needs one (every other table is read by its primary key).
      // ef_search twice the 3k vectors each query takes: at 100,000 memories that showed the
      // model 0.996 of the exact read's memories, against 0.997 at four times, for about 1 ms
      // less (`npx tsx bench/formation.ts --large 100000`).
      await db.transaction((tx) => tx.queryAndCommit<Result>(snapshotSql(t), params, { prepare: true }), {
        settings: {
          'hnsw.ef_search': String(Math.min(1000, Math.max(efSearch, topK * 3 * 2))),
          'hnsw.iterative_scan': 'relaxed_order',
          enable_seqscan: 'off',
          // The exact form runs the same prepared statement with seq scans on, and a generic
          // plan kept by one is not planned again for the other's settings.
          plan_cache_mode: 'force_custom_plan',
        },
      })
    : await db.query<Result>(snapshotSql(t), params, { prepare: true });
  return res.rows.map((row, i) => {
    const namespace = (requests[i] as SnapshotRequest).namespace;
    const toMemory = (m: Row): SnapshotMemory => ({
      namespace,
      key: m.key,
      kind: m.kind,
      version: Number(m.version),
      value: m.value,
    });
    return {
      namespace,
      version: Number(row.version),
      items: Number(row.items),
      memories: row.memories.map(toMemory),
      profiles: row.profiles.map(toMemory),
    };
  });
}

export function snapshotSql(t: Tables): string {
  // Nearest vectors first, over-fetched 3x so that memories with several embedded fields, other
  // kinds or past their TTL still leave k. Two forms, one per namespace as the caller chose:
  // exact (the distance as an expression the HNSW index cannot order by, so the namespace's
  // btree range is read and sorted: every vector, the true nearest), or through the index (the
  // namespace compared as text, which no btree serves, so the planner takes the ordered HNSW
  // scan and filters it). The branch a namespace does not take is cut by a one-time filter.
  const exact = vectorDistances(t, 'q.v', 'v.namespace = g.namespace and not g.ann', '$3 * 3').replace(
    'v.embedding <=> q.v as distance',
    '(v.embedding <=> q.v) + 0 as distance',
  );
  const indexed = vectorDistances(t, 'q.v', 'g.ann and v.namespace::text = g.namespace::text', '$3 * 3');
  const nearest = `(${exact}) union all (${indexed})`;
  return `with g as (
       select x.ord::int as ord,
              array(select jsonb_array_elements_text(x.e->'namespace')) as namespace,
              array(select jsonb_array_elements_text(x.e->'kinds')) as kinds,
              x.e->'profiles' as profiles,
              array(select p->>'key' from jsonb_array_elements(x.e->'profiles') as p) as profile_keys,
              (x.e->>'ann')::boolean as ann
         from jsonb_array_elements($1::jsonb) with ordinality as x(e, ord)),
     per_query as (
       select g.ord, h.key, h.distance, row_number() over (partition by g.ord, q.qn order by h.distance, h.key) as rank
         from g cross join unnest($2::vector[]) with ordinality as q(v, qn) cross join lateral (
           select n.key, min(n.distance) as distance
             from (${nearest}) n
            -- A row at a profile's key is that profile (below), never also a collection memory.
            -- What the model may change is what holds now: an invalidated memory is history.
            -- A scalar subquery, which the planner never turns into a join: each of the 3k
            -- nearest keys is one primary-key probe, whatever the statistics say. As a join,
            -- a namespace grown since the last ANALYZE was estimated at one row and put on
            -- the outer side of a nested loop: every memory against every nearest vector.
            where (select m.kind = any(g.kinds) and not (m.key = any(g.profile_keys)) and ${alive('m')} and m.invalid_at is null
                     from ${t.memories} m where m.namespace = g.namespace and m.key = n.key)
            group by n.key order by distance, n.key limit $3) h),
     picked as (
       select ord, key, row_number() over (partition by ord order by min(rank), min(distance), key) as n
         from per_query group by ord, key)
     select g.ord, coalesce(ns.version, 0) as version, coalesce(ns.items, 0) as items,
       -- The items themselves by one primary-key probe each (offset 0 keeps the lateral a
       -- nested loop: a hash join read the whole namespace when its size was underestimated).
       coalesce((select jsonb_agg(jsonb_build_object('key', m.key, 'kind', m.kind, 'version', m.version, 'value', m.value) order by p.n)
                   from picked p cross join lateral (
                     select m.key, m.kind, m.version, m.value from ${t.memories} m
                      where m.namespace = g.namespace and m.key = p.key offset 0) m
                  where p.ord = g.ord and p.n <= $3), '[]') as memories,
       coalesce((select jsonb_agg(jsonb_build_object('key', m.key, 'kind', p.kind, 'version', m.version, 'value', m.value) order by m.key)
                   from jsonb_to_recordset(g.profiles) as p(key text, kind text) cross join lateral (
                     select m.key, m.version, m.value from ${t.memories} m
                      where m.namespace = g.namespace and m.key = p.key and ${alive('m')} offset 0) m), '[]') as profiles
       from g left join ${t.namespaces} ns on ns.namespace = g.namespace
      order by g.ord`;
}
