import type { CurrentRow, Locked, Plan, Stamp } from './change-plan.js';
import type { ChangeSet, Once, Write } from './change-set.js';
import type { Queryable, QueryOptions, Tx } from './db.js';
import { namespacesCte, uniqueSorted } from './namespace-locks.js';
import { expiryAfter, namespaceFromJson, Params, touched, type Tables } from './sql.js';
import type { IndexedField, Namespace } from './types.js';

/**
 * The SQL half of the change-set writer (rules in change-set.ts): a handful of set-based
 * statements whatever the number of writes, never one per item. Namespaces travel as JSON texts
 * (a ragged list of text[] is no Postgres array) and rows refer to them by their 1-based place in
 * the lock order (`nsi`).
 */

const nsJson = (namespaces: Namespace[]) => namespaces.map((ns) => JSON.stringify(ns));

/** Changes of at most this many writes, guards and reads have their statements prepared. */
const PREPARED_CHANGE_MAX = 32;

/**
 * A small change's statements are prepared: their texts vary only with which kinds of rows a
 * change has (a few dozen shapes per store), and a reflection's commit spent more time having
 * Postgres parse and plan them than running them. A large one's are not: once Postgres keeps a
 * generic plan it assumes about ten rows per array, and the plan that is right for a reflection
 * compared every kept field with every other in a 4,000-item overwrite (a review's one-off
 * timing: 3.6 s against 0.44 s planned for its arrays; docs/decisions.md).
 */
export function preparedFor(change: ChangeSet): QueryOptions {
  const size = change.writes.length + (change.guards?.length ?? 0) + (change.reads?.length ?? 0);
  return { prepare: size <= PREPARED_CHANGE_MAX };
}

/**
 * Creates and locks the namespace rows in the global order, in one statement, and reads their
 * versions when asked. Rows are inserted in the select's order, so locks are taken in that order,
 * and a new row is never held while waiting for an older one (that deadlocked with a writer
 * holding the older one and creating the same new one). An existing row is locked by the
 * conflict's update: a no-op update when its version is wanted (RETURNING gives it), else one
 * whose condition is false, which locks the row without writing a new version of it (a batch
 * of 500 puts locks 500 rows that its own bump rewrites anyway). One namespace, the common
 * commit, gets the plain form: no JSON unnesting to plan.
 */
export async function lockNamespaces(
  tx: Queryable,
  t: Tables,
  all: Namespace[],
  withVersions = false,
  options: QueryOptions = {},
): Promise<Locked> {
  const namespaces = uniqueSorted(all);
  const onConflict = withVersions
    ? 'on conflict (namespace) do update set version = n.version'
    : 'on conflict (namespace) do update set version = n.version where false';
  if (namespaces.length === 1) {
    const res = await tx.query<{ version: unknown }>(
      `insert into ${t.namespaces} as n (namespace) values ($1) ${onConflict} returning version`,
      [namespaces[0]],
      options,
    );
    return withVersions ? { namespaces, versions: [Number(res.rows[0]?.version)] } : { namespaces };
  }
  const res = await tx.query<{ o: unknown; version: unknown }>(
    `with nss as (select * from ${namespacesCte('$1')}),
     locked as (
       insert into ${t.namespaces} as n (namespace) select ns from nss order by o
       ${onConflict} returning n.namespace, n.version)
     select nss.o, locked.version from locked join nss on nss.ns = locked.namespace`,
    [namespaces.map((ns) => JSON.stringify(ns))],
    options,
  );
  if (!withVersions) return { namespaces };
  const versions = new Array<number>(namespaces.length).fill(0);
  for (const r of res.rows) versions[Number(r.o) - 1] = Number(r.version);
  return { namespaces, versions };
}

/**
 * The change's once-key claim, as SQL returning one value (`$cursor`/`$key`: its parameters):
 * the cursor row is locked to the commit and created empty on a thread's first change; a key is
 * inserted, and returned only when it was not applied before.
 */
function claimSql(t: Tables, once: Once, p: Params): string {
  return 'cursor' in once
    ? `insert into ${t.cursors} as c (thread_id, cursor) values (${p.add(once.cursor.threadId)}, '')
       on conflict (thread_id) do update set cursor = c.cursor returning cursor`
    : `insert into ${t.appliedChanges} (key) values (${p.add(once.key)}) on conflict do nothing returning key`;
}

export interface Claimed {
  /**
   * False when the once-key was spent: the thread's cursor is not the one the change read its
   * turns after, or the key was applied.
   */
  claimed: boolean;
  current: CurrentRow[];
  /**
   * The database's clock when the items were read, after the locks (text: microseconds kept):
   * the time expiry was judged at, and the one the writes stamp and count new expiries from.
   */
  at: string | null;
}

/**
 * After the namespace locks, in one statement: takes the change's once-key (a row lock held to
 * the commit) and reads each write's item as it is now, then each guard's; for a key with no
 * row, its last history version (versions never repeat). Both halves are safe in one statement:
 * the items are in namespaces this transaction has locked, so no writer of them can commit
 * between the statement's snapshot and its end, and the cursor's `on conflict do update` returns
 * the row's latest version whatever the snapshot. The read is of no use when the claim fails.
 */
export async function claimAndRead(tx: Queryable, t: Tables, change: ChangeSet): Promise<Claimed> {
  const refs = [...change.writes, ...(change.guards ?? [])];
  if (refs.length === 0 && !change.once) return { claimed: true, current: [], at: null };
  const p = new Params();
  const nsParam = p.add(refs.map((r) => JSON.stringify(r.namespace)));
  const keyParam = p.add(refs.map((r) => r.key));
  // A revert's writes compare the key's last history row and the row they put back.
  const headParam = p.add(refs.map((r) => 'op' in r && (lastChangeOf(r) !== undefined || restoresOf(r) !== null)));
  const restoresParam = p.add(refs.map((r) => ('op' in r ? restoresOf(r) : null)));
  const once = change.once;
  const res = await tx.query<{
    once: string | null;
    at: string;
    idx: unknown;
    version: unknown;
    kind: string | null;
    value: Record<string, unknown> | null;
    expired: boolean | null;
    last_version: unknown;
    invalidated: boolean | null;
    last_change: unknown;
    source_kept: boolean | null;
  }>(
    // One row at least (the claim's), then one per ref in order.
    `with claim as (${once ? claimSql(t, once, p) : 'select null::text'}),
     clock as materialized (select clock_timestamp() as at)
     select (select * from claim) as once, (select at from clock)::text as at, c.*
       from (select 1) as one left join (
         select r.idx, m.version, m.kind, m.value, m.expires_at <= (select at from clock) as expired,
                case when m.key is null then
                  (select h.version from ${t.history} h where h.namespace = r.ns and h.key = r.key order by h.id desc limit 1)
                end as last_version, m.invalid_at is not null as invalidated,
                case when r.head then
                  (select h.id from ${t.history} h where h.namespace = r.ns and h.key = r.key order by h.id desc limit 1)
                end as last_change,
                case when r.restores is not null then exists (
                  select 1 from ${t.history} h
                   where h.id = r.restores and h.namespace = r.ns and h.key = r.key and coalesce(h.before, h.after) is not null)
                end as source_kept
           from (select u.key, u.idx, u.head, u.restores, ${namespaceFromJson('u.j')} as ns
                   from unnest(${nsParam}::text[], ${keyParam}::text[], ${headParam}::bool[], ${restoresParam}::bigint[])
                        with ordinality as u(j, key, head, restores, idx)) r
           left join ${t.memories} m on m.namespace = r.ns and m.key = r.key) c on true
      order by c.idx`,
    p.values,
    preparedFor(change),
  );
  const claimed = !once
    ? true
    : 'cursor' in once
      ? (res.rows[0]?.once || null) === once.cursor.expected
      : res.rows[0]?.once != null;
  const current = res.rows
    .filter((r) => r.idx !== null)
    .map((r) => ({
      version: r.version === null ? null : Number(r.version),
      kind: r.kind,
      value: r.value,
      expired: r.expired === true,
      invalidated: r.invalidated === true,
      lastVersion: r.last_version === null ? null : Number(r.last_version),
      lastChange: r.last_change === null ? null : Number(r.last_change),
      sourceKept: r.source_kept,
    }));
  return { claimed, current, at: res.rows[0]?.at ?? null };
}

const restoresOf = (w: Write): number | null => (w.op === 'put' ? (w.restores ?? null) : null);
const lastChangeOf = (w: Write) => (w.op === 'put' || w.op === 'delete' ? w.ifLastChange : undefined);

/** The thread's cursor: the last buffered turn a committed change applied (null: none yet). */
export async function readCursor(db: Queryable, t: Tables, threadId: string): Promise<string | null> {
  const res = await db.query<{ cursor: string }>(`select cursor from ${t.cursors} where thread_id = $1`, [threadId], {
    prepare: true,
  });
  return res.rows[0]?.cursor || null;
}

/** Whether a change with this idempotency key was applied. */
export async function isApplied(db: Queryable, t: Tables, key: string): Promise<boolean> {
  return (await db.query(`select 1 from ${t.appliedChanges} where key = $1`, [key])).rowCount > 0;
}

/**
 * The plan's rows in one statement: new items inserted, existing ones updated in place (an
 * expired one revived with a new creation time), invalidations marked, removed ones deleted
 * (their vectors cascade), history in order, namespace versions and counts bumped, the thread
 * cursor moved, and the puts' indexed fields replaced (`fieldsCtes`). Returns the times of the
 * puts by write index.
 */
export async function writePlan(
  tx: Tx,
  t: Tables,
  change: ChangeSet,
  plan: Plan,
  fields: ({ i: number } & IndexedField)[],
  vectorParam: unknown,
  claimedAt: string | null,
): Promise<Map<number, Stamp>> {
  const p = new Params();
  const now = claimedAt === null ? 'now()' : `${p.add(claimedAt)}::timestamptz`;
  const col: Col = (rows, pick, type) => `${p.add(rows.map(pick))}::${type}[]`;
  const cursor = change.once && 'cursor' in change.once ? change.once.cursor : null;
  const nss = namespacesCte(p.add(nsJson(plan.namespaces)));
  // The transaction's last statement: its commit rides in the same round trip.
  const res = await tx.queryAndCommit<StampRow>(
    `with nss as (select * from ${nss}),
     ins as (${insertSql(
       t,
       plan.puts.filter((x) => !x.existed),
       col,
       now,
     )}),
     upd as (${updateSql(
       t,
       plan.puts.filter((x) => x.existed),
       col,
       now,
     )}),
     inv as (${invalidateSql(t, plan.invalidations, col, now)}),
     del as (
       delete from ${t.memories} m
        using unnest(${col(plan.deletes, (x) => x.nsi, 'int')}, ${col(plan.deletes, (x) => x.key, 'text')}) as x(nsi, key), nss
        where nss.o = x.nsi and m.namespace = nss.ns and m.key = x.key),
     hist as (${historySql(t, plan.history, change.threadId ?? null, col, p, now)}),${scrubCte(t, plan.history, col)}
     bump as (
       update ${t.namespaces} n set version = n.version + 1, items = n.items + b.delta, updated_at = ${touched('n', now)}
         from unnest(${col(plan.bumps, (b) => b.nsi, 'int')}, ${col(plan.bumps, (b) => b.delta, 'bigint')}) as b(nsi, delta), nss
        where nss.o = b.nsi and n.namespace = nss.ns),
     cur as (update ${t.cursors} set cursor = ${p.add(cursor?.next ?? null)}, updated_at = ${now}
              where thread_id = ${p.add(cursor?.threadId ?? null)})${plan.puts.length ? fieldsCtes(t, change, plan, fields, vectorParam, p) : ''}
     select ${STAMP} from ins union all select ${STAMP} from upd`,
    p.values,
    preparedFor(change),
  );
  const at = new Map(plan.puts.map((x) => [JSON.stringify([change.writes[x.i]?.namespace, x.key]), x.i]));
  return new Map(
    res.rows.map((r) => [
      at.get(JSON.stringify([r.namespace, r.key])) as number,
      {
        createdAt: r.created_at,
        updatedAt: r.updated_at,
        expiresAt: r.expires_at,
        validFrom: r.valid_from,
        invalidAt: r.invalid_at,
      },
    ]),
  );
}

/** One column of a set-based write: the rows' values as one array parameter of a SQL type. */
type Col = <T>(rows: T[], pick: (row: T) => unknown, type: string) => string;
type PlannedPuts = Plan['puts'];
/** What a put row returns: its key and the times the database set. */
const STAMP = 'namespace, key, created_at, updated_at, expires_at, valid_from, invalid_at';
interface StampRow {
  namespace: Namespace;
  key: string;
  created_at: Date;
  updated_at: Date;
  expires_at: Date | null;
  valid_from: Date;
  invalid_at: Date | null;
}

/** New rows (and rows replacing nothing): valid from the write's time or now, invalid if it says. */
function insertSql(t: Tables, inserts: PlannedPuts, col: Col, now: string): string {
  return `insert into ${t.memories} (namespace, key, kind, value, version, created_at, updated_at, expires_at, ttl_ms,
                                     valid_from, invalid_at, invalidated_by)
       select nss.ns, x.key, x.kind, x.value::jsonb, x.version, ${now}, ${now}, ${expiryAfter('x.ttl_ms', now)}, x.ttl_ms,
              coalesce(x.valid_from, ${now}), x.invalid_at, x.invalidated_by
         from unnest(${col(inserts, (x) => x.nsi, 'int')}, ${col(inserts, (x) => x.key, 'text')}, ${col(inserts, (x) => x.kind, 'text')},
                     ${col(inserts, (x) => JSON.stringify(x.value), 'text')}, ${col(inserts, (x) => x.version, 'bigint')},
                     ${col(inserts, (x) => x.ttlMs, 'bigint')}, ${col(inserts, (x) => x.validFrom, 'timestamptz')},
                     ${col(inserts, (x) => x.invalidAt, 'timestamptz')}, ${col(inserts, (x) => x.invalidatedBy, 'text')})
              as x(nsi, key, kind, value, version, ttl_ms, valid_from, invalid_at, invalidated_by)
         join nss on nss.o = x.nsi
       returning ${STAMP}`;
}

/**
 * Puts over existing rows: a 'keep' put keeps the expiry, a revived (expired) row restarts its
 * creation and validity, and a put makes an invalidated item hold again unless it says since
 * when it does not (a revert to an invalidation).
 */
function updateSql(t: Tables, updates: PlannedPuts, col: Col, now: string): string {
  return `update ${t.memories} m set kind = x.kind, value = x.value::jsonb, version = x.version, updated_at = ${now},
              expires_at = case when x.keep then m.expires_at else ${expiryAfter('x.ttl_ms', now)} end,
              ttl_ms = case when x.keep then m.ttl_ms else x.ttl_ms end,
              created_at = case when x.revived then ${now} else m.created_at end,
              valid_from = coalesce(x.valid_from, case when x.revived then ${now} else m.valid_from end),
              invalid_at = x.invalid_at, invalidated_by = x.invalidated_by
         from unnest(${col(updates, (x) => x.nsi, 'int')}, ${col(updates, (x) => x.key, 'text')}, ${col(updates, (x) => x.kind, 'text')},
                     ${col(updates, (x) => JSON.stringify(x.value), 'text')}, ${col(updates, (x) => x.version, 'bigint')},
                     ${col(updates, (x) => x.ttlMs, 'bigint')}, ${col(updates, (x) => x.keepTtl, 'bool')},
                     ${col(updates, (x) => x.revived, 'bool')}, ${col(updates, (x) => x.validFrom, 'timestamptz')},
                     ${col(updates, (x) => x.invalidAt, 'timestamptz')}, ${col(updates, (x) => x.invalidatedBy, 'text')})
              as x(nsi, key, kind, value, version, ttl_ms, keep, revived, valid_from, invalid_at, invalidated_by), nss
        where nss.o = x.nsi and m.namespace = nss.ns and m.key = x.key
       returning ${STAMP.replace(/(\w+)/g, 'm.$1')}`;
}

/** Invalidations: the item stays, with a new version and the time it stopped holding. */
function invalidateSql(t: Tables, invalidations: Plan['invalidations'], col: Col, now: string): string {
  return `update ${t.memories} m set version = x.version, updated_at = ${now}, invalid_at = coalesce(x.at, ${now}),
              invalidated_by = x.actor
         from unnest(${col(invalidations, (x) => x.nsi, 'int')}, ${col(invalidations, (x) => x.key, 'text')},
                     ${col(invalidations, (x) => x.version, 'bigint')}, ${col(invalidations, (x) => x.at, 'timestamptz')},
                     ${col(invalidations, (x) => x.actor, 'text')})
              as x(nsi, key, version, at, actor), nss
        where nss.o = x.nsi and m.namespace = nss.ns and m.key = x.key
       returning m.namespace, m.key, m.valid_from, m.invalid_at`;
}

/**
 * History rows in the plan's order (ordinality), with the change's thread. A row that sets a
 * document (a put's, an invalidation's) records the validity its write left, from the written
 * rows themselves (`ins`, `upd`, `inv`): what a revert to its version puts back. A key is written
 * once per change, and its other row (an expiry before a put) sets no document.
 */
function historySql(
  t: Tables,
  history: Plan['history'],
  threadId: string | null,
  col: Col,
  p: Params,
  now: string,
): string {
  const json = (v: unknown) => (v === null ? null : JSON.stringify(v));
  return `insert into ${t.history} (namespace, key, kind, op, version, before, after, actor, thread_id, valid_from, invalid_at, created_at)
       select nss.ns, h.key, h.kind, h.op, h.version, h.before::jsonb, h.after::jsonb, h.actor, ${p.add(threadId)}::text,
              w.valid_from, w.invalid_at, ${now}
         from unnest(${col(history, (h) => h.nsi, 'int')}, ${col(history, (h) => h.key, 'text')},
                     ${col(history, (h) => h.kind, 'text')}, ${col(history, (h) => h.op, 'text')},
                     ${col(history, (h) => h.version, 'bigint')}, ${col(history, (h) => json(h.before), 'text')},
                     ${col(history, (h) => json(h.after), 'text')}, ${col(history, (h) => h.actor, 'text')})
              with ordinality as h(nsi, key, kind, op, version, before, after, actor, ord)
         join nss on nss.o = h.nsi
         left join (select namespace, key, valid_from, invalid_at from ins
                    union all select namespace, key, valid_from, invalid_at from upd
                    union all select namespace, key, valid_from, invalid_at from inv) w
           on h.after is not null and w.namespace = nss.ns and w.key = h.key
        order by h.ord`;
}

/**
 * An expired key's earlier history rows lose their documents (versions, actors and times stay:
 * a put after the expiry takes its version past the last one). The statement's own new rows
 * are not among them: a data-modifying CTE does not see another's rows. Only in a change that
 * finds an expired row, so that the common commit's statement stays as it was.
 */
function scrubCte(t: Tables, history: Plan['history'], col: Col): string {
  const expired = history.filter((h) => h.op === 'expire');
  if (!expired.length) return '';
  return `
     scrub as (update ${t.history} h set before = null, after = null
         from unnest(${col(expired, (h) => h.nsi, 'int')}, ${col(expired, (h) => h.key, 'text')}) as x(nsi, key), nss
        where nss.o = x.nsi and h.namespace = nss.ns and h.key = x.key
          and (h.before is not null or h.after is not null)),`;
}

/**
 * The CTEs that replace the indexed fields of every put, part of `writePlan`'s statement: the new
 * ones upserted (text, and vector when embedded), those an existing item no longer indexes
 * deleted (no orphan vectors). Embedded fields carry their vectors in one binary array
 * parameter; text-only ones travel apart (a binary array cannot hold a null). In one statement
 * with the items' own rows: a new item's vectors meet the foreign key at the statement's end,
 * once the item is inserted, and no row is written twice (a key has one write, and `gone` deletes
 * only the fields `keep` does not write).
 */
function fieldsCtes(
  t: Tables,
  change: ChangeSet,
  plan: Plan,
  fields: ({ i: number } & IndexedField)[],
  vectorParam: unknown,
  p: Params,
): string {
  const embedded = fields.filter((f) => f.vector);
  const textOnly = fields.filter((f) => !f.vector);
  const old = plan.puts.filter((x) => x.existed);
  const keyOf = (f: { i: number }) => change.writes[f.i]?.key;
  const col = <T>(rows: T[], pick: (row: T) => unknown, type: string) => `${p.add(rows.map(pick))}::${type}[]`;
  // The vectors unnested in the select list, which streams the rows: unnest in FROM is a function
  // scan that stores its whole result first, on disk past work_mem (4 MB by default; a batch of
  // 1,000 puts of 1,536 dimensions carries 6 MB: log_temp_files showed a 6 MB file per
  // statement). Not materialized either: `vec` reads the rows as they come, and `gone` reads
  // them again only for items that existed.
  return `,
     keep as not materialized (
       select unnest(${col(embedded, (f) => plan.nsi[f.i], 'int')}) as nsi, unnest(${col(embedded, keyOf, 'text')}) as key,
              unnest(${col(embedded, (f) => f.field, 'text')}) as field, unnest(${col(embedded, (f) => f.text, 'text')}) as text,
              unnest(${p.add(vectorParam ?? '{}')}::vector[]) as embedding
       union all
       select *, null::vector from unnest(${col(textOnly, (f) => plan.nsi[f.i], 'int')}, ${col(textOnly, keyOf, 'text')},
                                          ${col(textOnly, (f) => f.field, 'text')}, ${col(textOnly, (f) => f.text, 'text')})
              as k(nsi, key, field, text)),
     gone as (
       delete from ${t.vectors} x using unnest(${col(old, (x) => x.nsi, 'int')}, ${col(old, (x) => x.key, 'text')}) as o(nsi, key), nss
        where nss.o = o.nsi and x.namespace = nss.ns and x.key = o.key
          and not exists (select 1 from keep where keep.nsi = o.nsi and keep.key = o.key and keep.field = x.field)),
     vec as (
       insert into ${t.vectors} (namespace, key, field, text, embedding)
       select nss.ns, keep.key, keep.field, keep.text, keep.embedding from keep join nss on nss.o = keep.nsi
       on conflict (namespace, key, field) do update set text = excluded.text, embedding = excluded.embedding)`;
}
