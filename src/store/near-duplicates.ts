import type { Db } from './db.js';
import type { Tables } from './sql.js';
import type { Namespace } from './types.js';

/** A namespace written since it was last consolidated, with the version consolidation saw. */
export interface ChangedNamespace {
  namespace: Namespace;
  version: number;
  /** When it was last consolidated (null: never): only memories changed after it are compared. */
  since: Date | null;
}

export interface NearPair {
  a: string;
  b: string;
  distance: number;
}

/**
 * Namespaces with a write since their last consolidation, oldest change first, that hold two
 * items or more (one item has no duplicate). Read before the pairs: a write after this read
 * moves the version, and the merge's compare-and-set then refuses to commit.
 */
export async function changedNamespaces(db: Db, t: Tables, limit: number): Promise<ChangedNamespace[]> {
  const res = await db.query<{ namespace: Namespace; version: unknown; consolidated_at: Date | null }>(
    `select namespace, version, consolidated_at from ${t.namespaces}
      where items > 1 and (consolidated_at is null or updated_at > consolidated_at)
      order by updated_at limit $1`,
    [limit],
  );
  return res.rows.map((r) => ({ namespace: r.namespace, version: Number(r.version), since: r.consolidated_at }));
}

/**
 * Pairs of live memories of one kind whose vectors of one field lie within `maxDistance`
 * (cosine), closest first. One side is a memory changed since `since`: memories compared at an
 * earlier consolidation are not compared again, so a pass costs (changed x namespace size), not
 * the square of the namespace. Each changed vector looks at its `neighbours` nearest in its
 * namespace (the form an HNSW index can serve).
 */
export async function nearDuplicatePairs(
  db: Db,
  t: Tables,
  q: { namespace: Namespace; kinds: string[]; since: Date | null; maxDistance: number; changedLimit: number; neighbours: number },
): Promise<NearPair[]> {
  const res = await db.query<{ a: string; b: string; distance: number }>(
    `with changed as (
       select m.key, m.kind from ${t.memories} m
        where m.namespace = $1 and m.kind = any($2) and (m.expires_at is null or m.expires_at > now())
          and ($3::timestamptz is null or m.updated_at > $3)
        order by m.updated_at desc limit $5)
     select least(c.key, n.key) as a, greatest(c.key, n.key) as b, min(n.distance) as distance
       from changed c
       join ${t.vectors} v on v.namespace = $1 and v.key = c.key
       cross join lateral (
         select w.key, w.embedding <=> v.embedding as distance from ${t.vectors} w
          where w.namespace = $1 and w.field = v.field and w.key <> c.key
          order by w.embedding <=> v.embedding limit $6) n
       join ${t.memories} o on o.namespace = $1 and o.key = n.key
      where n.distance <= $4 and o.kind = c.kind and (o.expires_at is null or o.expires_at > now())
      group by 1, 2 order by 3, 1, 2`,
    [q.namespace, q.kinds, q.since, q.maxDistance, q.changedLimit, q.neighbours],
  );
  return res.rows.map((r) => ({ a: r.a, b: r.b, distance: Number(r.distance) }));
}

/**
 * Records a pass over a namespace, unless it changed since the version the pass saw (the
 * version after its own merge, if it merged): such a change is compared at the next pass.
 */
export async function markConsolidated(db: Db, t: Tables, namespace: Namespace, version: number): Promise<void> {
  await db.query(`update ${t.namespaces} set consolidated_at = now() where namespace = $1 and version = $2`, [namespace, version]);
}
