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
): Promise<NamespaceSnapshot[]> {
  const res = await db.query<{ version: unknown; memories: Row[]; profiles: Row[] }>(snapshotSql(t), [
    JSON.stringify(requests),
    await db.vectorArrayParam(vectors),
    topK,
  ]);
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
      memories: row.memories.map(toMemory),
      profiles: row.profiles.map(toMemory),
    };
  });
}

function snapshotSql(t: Tables): string {
  // Nearest vectors first (the form an HNSW index can serve), over-fetched 3x so that memories
  // with several embedded fields, other kinds or past their TTL still leave k.
  const nearest = vectorDistances(t, 'q.v', 'v.namespace = g.namespace', '$3 * 3');
  return `with g as (
       select x.ord::int as ord,
              array(select jsonb_array_elements_text(x.e->'namespace')) as namespace,
              array(select jsonb_array_elements_text(x.e->'kinds')) as kinds,
              x.e->'profiles' as profiles,
              array(select p->>'key' from jsonb_array_elements(x.e->'profiles') as p) as profile_keys
         from jsonb_array_elements($1::jsonb) with ordinality as x(e, ord)),
     per_query as (
       select g.ord, h.key, h.distance, row_number() over (partition by g.ord, q.qn order by h.distance, h.key) as rank
         from g cross join unnest($2::vector[]) with ordinality as q(v, qn) cross join lateral (
           select n.key, min(n.distance) as distance
             from (${nearest}) n
             join ${t.memories} m on m.namespace = g.namespace and m.key = n.key
            -- A row at a profile's key is that profile (below), never also a collection memory.
            -- What the model may change is what holds now: an invalidated memory is history.
            where m.kind = any(g.kinds) and not (m.key = any(g.profile_keys)) and ${alive('m')} and m.invalid_at is null
            group by n.key order by distance, n.key limit $3) h),
     picked as (
       select ord, key, row_number() over (partition by ord order by min(rank), min(distance), key) as n
         from per_query group by ord, key)
     select g.ord, coalesce(ns.version, 0) as version,
       coalesce((select jsonb_agg(jsonb_build_object('key', m.key, 'kind', m.kind, 'version', m.version, 'value', m.value) order by p.n)
                   from picked p join ${t.memories} m on m.namespace = g.namespace and m.key = p.key
                  where p.ord = g.ord and p.n <= $3), '[]') as memories,
       coalesce((select jsonb_agg(jsonb_build_object('key', m.key, 'kind', p.kind, 'version', m.version, 'value', m.value) order by m.key)
                   from jsonb_to_recordset(g.profiles) as p(key text, kind text)
                   join ${t.memories} m on m.namespace = g.namespace and m.key = p.key
                  where ${alive('m')}), '[]') as profiles
       from g left join ${t.namespaces} ns on ns.namespace = g.namespace
      order by g.ord`;
}
