import type { Db } from './db.js';
import { alive, type Tables } from './sql.js';
import type { Namespace } from './types.js';

/**
 * How far consolidation got in a namespace: every memory at or before (`at`, `key`), in
 * (updated_at, key) order, was compared. `at` is a timestamp as Postgres prints it (a JS Date
 * would lose its microseconds).
 */
export interface ConsolidationMark {
  at: string;
  key: string;
}

/** A namespace written since its mark. */
export interface ChangedNamespace {
  namespace: Namespace;
  /** null: never consolidated, every memory is new to it. */
  since: ConsolidationMark | null;
}

/** A memory changed since the mark, with the live memories of its kind near it (if any). */
export interface ChangedMemory {
  key: string;
  changedAt: string;
  near: { key: string; distance: number }[];
}

export interface Candidates {
  /** The namespace's version in the same snapshot: the merge's compare-and-set. */
  version: number;
  /** Changed memories, oldest change first. */
  changed: ChangedMemory[];
  /** More changed than were read. */
  more: boolean;
}

/**
 * Up to `limit` namespaces with a write since their mark that hold two items or more (one item
 * has no duplicate), least recently tried first, and stamped as tried: a namespace whose pass
 * keeps failing goes to the back instead of holding the front. A namespace a writer has locked
 * right now waits for the next pass.
 */
export async function changedNamespaces(db: Db, t: Tables, limit: number): Promise<ChangedNamespace[]> {
  const res = await db.query<{ namespace: Namespace; at: string | null; key: string; tried: string }>(
    `update ${t.namespaces} n set consolidation_tried_at = now()
      where n.namespace in (
        select namespace from ${t.namespaces}
         where items > 1
           -- A mark with a key stopped inside one change time: there is more at that time.
           and (consolidated_at is null or updated_at > consolidated_at or (updated_at = consolidated_at and consolidated_key <> ''))
         order by consolidation_tried_at nulls first, updated_at limit $1 for update skip locked)
      returning n.namespace, n.consolidated_at::text as at, n.consolidated_key as key`,
    [limit],
  );
  return res.rows.map((r) => ({ namespace: r.namespace, since: r.at === null ? null : { at: r.at, key: r.key } }));
}

/**
 * Memories of `kinds` changed after the mark (oldest first, at most `changedLimit`), each with
 * the live memories of its kind near it. Candidates are each vector's `neighbours` nearest of
 * the same field and kind (the form an HNSW index can serve); a pair's distance is then the
 * largest over the fields both embed, so two memories that share one field (a category) but
 * differ in another are not near. One statement: the version is that of what was read.
 */
export async function nearDuplicateCandidates(
  db: Db,
  t: Tables,
  q: { namespace: Namespace; kinds: string[]; since: ConsolidationMark | null; maxDistance: number; changedLimit: number; neighbours: number },
): Promise<Candidates> {
  const res = await db.query<{ version: unknown; key: string | null; changed_at: string | null; near: { key: string; distance: number }[] | null; more: boolean }>(
    `with changed as (
       select m.key, m.kind, m.updated_at from ${t.memories} m
        where m.namespace = $1 and m.kind = any($2) and ${alive('m')}
          and ($3::timestamptz is null or (m.updated_at, m.key) > ($3::timestamptz, $7::text))
        order by m.updated_at, m.key limit $5 + 1),
     examined as (select * from changed order by updated_at, key limit $5),
     candidate as (
       select distinct e.key, n.key as other
         from examined e
         join ${t.vectors} v on v.namespace = $1 and v.key = e.key
         cross join lateral (
           select w.key from ${t.vectors} w
             join ${t.memories} o on o.namespace = w.namespace and o.key = w.key
            where w.namespace = $1 and w.field = v.field and w.key <> e.key and o.kind = e.kind and ${alive('o')}
            order by w.embedding <=> v.embedding limit $6) n),
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
            (select count(*) from changed) > $5 as more
       from (select 1) one left join examined e on true
      order by e.updated_at, e.key`,
    [q.namespace, q.kinds, q.since?.at ?? null, q.maxDistance, q.changedLimit, q.neighbours, q.since?.key ?? ''],
  );
  const first = res.rows[0];
  return {
    version: Number(first?.version ?? 0),
    more: first?.more ?? false,
    changed: res.rows.flatMap((r) => (r.key ? [{ key: r.key, changedAt: r.changed_at as string, near: r.near ?? [] }] : [])),
  };
}

/**
 * Moves a namespace's mark to `through` (the last memory a pass took whole), or to now when the
 * pass took every changed memory; not when the namespace moved past `version` meanwhile (that
 * change is compared at the next pass). Never past the start of a writer still open: a writer's
 * `updated_at` is its BEGIN, so a write waiting on a lock (a batch behind a reflection on another
 * namespace) commits rows stamped before a mark set meanwhile, which a mark past them would skip
 * for good. Every writer of memories locks the namespaces table first (row locks, which take a
 * lock on the table), so the open writers are the sessions holding a lock on it; only one
 * between its BEGIN and its first statement goes unseen.
 */
export async function markConsolidated(db: Db, t: Tables, namespace: Namespace, version: number, through?: ConsolidationMark): Promise<void> {
  await db.query(
    `with wanted as (select coalesce($3::timestamptz, now()) as at, coalesce($4::text, '') as key),
          horizon as (
            select least(now(), coalesce(min(a.xact_start), now())) - interval '1 microsecond' as at
              from pg_locks l join pg_stat_activity a on a.pid = l.pid
             where l.relation = '${t.namespaces}'::regclass and l.pid <> pg_backend_pid() and a.xact_start is not null)
     update ${t.namespaces} n
        set consolidated_at = least(w.at, h.at), consolidated_key = case when w.at <= h.at then w.key else '' end
       from wanted w, horizon h
      where n.namespace = $1 and n.version = $2`,
    [namespace, version, through?.at ?? null, through?.key ?? null],
  );
}
