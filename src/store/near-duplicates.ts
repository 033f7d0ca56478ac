import type { Db } from './db.js';
import { alive, type Tables } from './sql.js';
import type { Namespace } from './types.js';

/** A namespace written since it was last consolidated. */
export interface ChangedNamespace {
  namespace: Namespace;
  /** When it was last consolidated through (null: never): only memories changed after it are compared. */
  since: string | null;
}

/** A memory changed since the last pass, oldest change first, with its near neighbours (if any). */
export interface ChangedMemory {
  key: string;
  /** Its `updated_at`, as Postgres prints it (microseconds kept, unlike a JS Date). */
  changedAt: string;
  near: { key: string; distance: number }[];
}

export interface Candidates {
  /** The namespace's version in the same snapshot: the merge's compare-and-set. */
  version: number;
  changed: ChangedMemory[];
  /** When more memories changed than were read, the change time of the first one left. */
  nextAt: string | null;
}

/**
 * Namespaces with a write since their last consolidation, oldest change first, that hold two
 * items or more (one item has no duplicate).
 */
export async function changedNamespaces(db: Db, t: Tables, limit: number): Promise<ChangedNamespace[]> {
  const res = await db.query<{ namespace: Namespace; since: string | null }>(
    `select namespace, consolidated_at::text as since from ${t.namespaces}
      where items > 1 and (consolidated_at is null or updated_at > consolidated_at)
      order by updated_at limit $1`,
    [limit],
  );
  return res.rows;
}

/**
 * Memories of `kinds` changed after `since` (oldest first, at most `changedLimit`), each with the
 * live memories of its kind near it. Candidates come from each of its vectors' `neighbours`
 * nearest of the same field (the form an HNSW index can serve); a pair's distance is then the
 * largest over the fields both embed, so two memories that share one field (a category) but
 * differ in another are not near. One statement: the version is that of what was read.
 */
export async function nearDuplicateCandidates(
  db: Db,
  t: Tables,
  q: { namespace: Namespace; kinds: string[]; since: string | null; maxDistance: number; changedLimit: number; neighbours: number },
): Promise<Candidates> {
  const res = await db.query<{ version: unknown; key: string | null; changed_at: string | null; near: { key: string; distance: number }[] | null; next_at: string | null }>(
    `with changed as (
       select m.key, m.kind, m.updated_at from ${t.memories} m
        where m.namespace = $1 and m.kind = any($2) and ${alive('m')}
          and ($3::timestamptz is null or m.updated_at > $3::timestamptz)
        order by m.updated_at, m.key limit $5 + 1),
     examined as (select * from changed order by updated_at, key limit $5),
     candidate as (
       select distinct e.key, n.key as other
         from examined e
         join ${t.vectors} v on v.namespace = $1 and v.key = e.key
         cross join lateral (
           select w.key from ${t.vectors} w
            where w.namespace = $1 and w.field = v.field and w.key <> e.key
            order by w.embedding <=> v.embedding limit $6) n
         join ${t.memories} o on o.namespace = $1 and o.key = n.key
        where o.kind = e.kind and ${alive('o')}),
     scored as (
       select c.key, c.other,
              (select max(a.embedding <=> b.embedding) from ${t.vectors} a
                 join ${t.vectors} b on b.namespace = a.namespace and b.key = c.other and b.field = a.field
                where a.namespace = $1 and a.key = c.key) as distance
         from candidate c)
     select (select version from ${t.namespaces} where namespace = $1) as version,
            e.key, e.updated_at::text as changed_at,
            (select jsonb_agg(jsonb_build_object('key', s.other, 'distance', s.distance) order by s.distance, s.other)
               from scored s where s.key = e.key and s.distance <= $4) as near,
            (select updated_at::text from changed order by updated_at, key offset $5 limit 1) as next_at
       from (select 1) one left join examined e on true
      order by e.updated_at, e.key`,
    [q.namespace, q.kinds, q.since, q.maxDistance, q.changedLimit, q.neighbours],
  );
  const first = res.rows[0];
  return {
    version: Number(first?.version ?? 0),
    nextAt: first?.next_at ?? null,
    changed: res.rows.flatMap((r) => (r.key ? [{ key: r.key, changedAt: r.changed_at as string, near: r.near ?? [] }] : [])),
  };
}

/**
 * Records a pass over a namespace: through now, or up to just before `before` (a change time as
 * Postgres prints it) when the pass stopped at the memory changed then. Not when the namespace
 * moved past `version` meanwhile: that change is compared at the next pass. The UPDATE waits for
 * a writer holding the namespace's row lock, then sees its new version; only a writer between
 * its BEGIN and its lock (its `updated_at` is its BEGIN) can slip under the mark.
 */
export async function markConsolidated(db: Db, t: Tables, namespace: Namespace, version: number, before?: string): Promise<void> {
  await db.query(
    `update ${t.namespaces} set consolidated_at = coalesce($3::timestamptz - interval '1 microsecond', now()) where namespace = $1 and version = $2`,
    [namespace, version, before ?? null],
  );
}
