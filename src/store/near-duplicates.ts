import type { Db } from './db.js';
import { vectorDistances } from './knn.js';
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
  /**
   * How far this read could see: just before the oldest writer still open on the namespaces
   * table, or now. A writer's rows carry its BEGIN time, so one open during the read, or waiting
   * on a lock (a batch behind a reflection on another namespace), commits rows stamped before
   * now; memories after the horizon are left for a later pass, and no mark passes it.
   */
  horizon: string;
  /** Changed memories up to the horizon, oldest first. */
  changed: ChangedMemory[];
  /** More changed than were read. */
  more: boolean;
}

/** Which memories of a namespace to compare, and how far to look. */
export interface CandidateQuery {
  namespace: Namespace;
  kinds: string[];
  since: ConsolidationMark | null;
  maxDistance: number;
  changedLimit: number;
  neighbours: number;
}

/**
 * Up to `limit` namespaces with a write since their mark that hold two items or more (one item
 * has no duplicate), least recently tried first, and stamped as tried: a namespace whose pass
 * keeps failing goes to the back instead of holding the front. A namespace a writer has locked
 * right now waits for the next pass.
 */
export async function changedNamespaces(db: Db, t: Tables, limit: number): Promise<ChangedNamespace[]> {
  const res = await db.query<{ namespace: Namespace; at: string | null; key: string }>(
    `with picked as (
       select namespace, consolidated_at, consolidated_key, consolidation_tried_at as tried, updated_at from ${t.namespaces}
        where items > 1
          -- A mark with a key stopped inside one change time: there may be more at that time.
          and (consolidated_at is null or updated_at > consolidated_at or (updated_at = consolidated_at and consolidated_key <> ''))
        order by consolidation_tried_at nulls first, updated_at limit $1 for update skip locked),
     stamped as (update ${t.namespaces} n set consolidation_tried_at = now() from picked p where n.namespace = p.namespace returning n.namespace)
     -- RETURNING keeps no order: the picking order again.
     select p.namespace, p.consolidated_at::text as at, p.consolidated_key as key
       from picked p join stamped s on s.namespace = p.namespace
      order by p.tried nulls first, p.updated_at`,
    [limit],
  );
  return res.rows.map((r) => ({ namespace: r.namespace, since: r.at === null ? null : { at: r.at, key: r.key } }));
}

/**
 * Memories of `kinds` changed after the mark and up to the horizon (oldest first, at most
 * `changedLimit`), each with the live memories of its kind near it. Candidates are each vector's
 * `neighbours` nearest of the same field and kind (the form an HNSW index can serve); a pair's
 * distance is then the largest over the fields both embed, so two memories that share one field
 * (a category) but differ in another are not near. Every writer of memories locks the namespaces
 * table first, so the open writers are the sessions holding a lock on it (of this role: others'
 * `xact_start` is hidden without pg_read_all_stats). One between its BEGIN and its locks is
 * not among them, and needs not be: a writer stamps its rows with the clock after its locks
 * (write-plan-sql.ts), later than this horizon.
 */
export async function nearDuplicateCandidates(db: Db, t: Tables, q: CandidateQuery): Promise<Candidates> {
  // Its own statement, before the read: a writer that holds its lock now either commits before
  // the read's snapshot (seen) or stamps rows after the horizon (left for later). Read in one
  // statement, a writer could commit between the snapshot and the look at pg_locks, unseen by both.
  const horizon = (
    await db.query<{ at: string }>(
      `select coalesce(least(now(), min(a.xact_start) - interval '1 microsecond'), now())::text as at
         from pg_locks l join pg_stat_activity a on a.pid = l.pid
        where l.relation = to_regclass($1) and l.database = (select oid from pg_database where datname = current_database())
          and l.pid <> pg_backend_pid() and a.xact_start is not null`,
      [t.namespaces],
    )
  ).rows[0]?.at as string;
  const res = await db.query<{
    key: string | null;
    changed_at: string | null;
    near: { key: string; distance: number }[] | null;
    more: boolean;
  }>(
    `with changed as (
       select m.key, m.kind, m.updated_at from ${t.memories} m
        where m.namespace = $1 and m.kind = any($2) and ${alive('m')} and m.invalid_at is null
          and ($3::timestamptz is null or (m.updated_at, m.key) > ($3::timestamptz, $7::text))
          and m.updated_at <= $8::timestamptz
        order by m.updated_at, m.key limit $5 + 1),
     examined as (select * from changed order by updated_at, key limit $5),
     candidate as (
       select distinct e.key, n.key as other
         from examined e
         join ${t.vectors} ev on ev.namespace = $1 and ev.key = e.key
         cross join lateral (${vectorDistances(t, 'ev.embedding', `v.namespace = $1 and v.field = ev.field and v.key <> e.key and exists (select 1 from ${t.memories} o where o.namespace = v.namespace and o.key = v.key and o.kind = e.kind and ${alive('o')} and o.invalid_at is null)`, '$6')}) n),
     scored as (
       select c.key, c.other,
              (select max(a.embedding <=> b.embedding) from ${t.vectors} a
                 join ${t.vectors} b on b.namespace = a.namespace and b.key = c.other and b.field = a.field
                where a.namespace = $1 and a.key = c.key) as distance
         from candidate c)
     select e.key, e.updated_at::text as changed_at,
            (select jsonb_agg(jsonb_build_object('key', s.other, 'distance', s.distance) order by s.distance, s.other)
               from scored s where s.key = e.key and s.distance <= $4) as near,
            (select count(*) from changed) > $5 as more
       from (select 1) one left join examined e on true
      order by e.updated_at, e.key`,
    [
      q.namespace,
      q.kinds,
      q.since?.at ?? null,
      q.maxDistance,
      q.changedLimit,
      q.neighbours,
      q.since?.key ?? '',
      horizon,
    ],
  );
  const first = res.rows[0];
  return {
    horizon,
    more: first?.more ?? false,
    changed: res.rows.flatMap((r) =>
      r.key ? [{ key: r.key, changedAt: r.changed_at as string, near: r.near ?? [] }] : [],
    ),
  };
}

/**
 * Moves a namespace's mark forward to `mark` (never back: a pass whose horizon was held back by
 * an open writer must not undo a later pass's progress). No version check: a write after the
 * read is stamped past the read's horizon, which no mark passes, so it is compared next time.
 */
export async function markConsolidated(
  db: Db,
  t: Tables,
  namespace: Namespace,
  mark: ConsolidationMark,
): Promise<void> {
  await db.query(
    `update ${t.namespaces} set consolidated_at = $2::timestamptz, consolidated_key = $3
      where namespace = $1 and (consolidated_at is null or ($2::timestamptz, $3::text) > (consolidated_at, consolidated_key))`,
    [namespace, mark.at, mark.key],
  );
}
