import type { CurrentRow, Locked } from './change-plan.js';
import type { ChangeSet, Once, Write } from './change-set.js';
import type { Queryable, QueryOptions } from './db.js';
import { namespacesCte, uniqueSorted } from './namespace-locks.js';
import { namespaceFromJson, Params, type Tables } from './sql.js';
import type { Namespace } from './types.js';

/**
 * The SQL half of the change-set writer (rules in change-set.ts): a handful of set-based
 * statements whatever the number of writes, never one per item. Namespaces travel as JSON texts
 * (a ragged list of text[] is no Postgres array) and rows refer to them by their 1-based place in
 * the lock order (`nsi`).
 */

export const nsJson = (namespaces: Namespace[]) => namespaces.map((ns) => JSON.stringify(ns));

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
