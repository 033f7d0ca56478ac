import type { Locked, CurrentRow, Plan } from './change-plan.js';
import type { ChangeSet, Once } from './change-set.js';
import type { Queryable } from './db.js';
import { namespacesCte, uniqueSorted } from './namespace-locks.js';
import { expiryAfter, namespaceFromJson, touched, type Tables } from './sql.js';
import type { IndexedField, MemoryItem, Namespace } from './types.js';

/**
 * The SQL half of the change-set writer (rules in change-set.ts): a handful of set-based
 * statements whatever the number of writes, never one per item. Namespaces travel as JSON texts
 * (a ragged list of text[] is no Postgres array) and rows refer to them by their 1-based place in
 * the lock order (`nsi`).
 */

const nsJson = (namespaces: Namespace[]) => namespaces.map((ns) => JSON.stringify(ns));

/**
 * Creates and locks the namespace rows in the global order, in one statement, and reads their
 * versions. The no-op update is what takes the lock of a row that exists (and lets RETURNING
 * give its version); rows are inserted in the select's order, so locks are taken in that order,
 * and a new row is never held while waiting for an older one (that deadlocked with a writer
 * holding the older one and creating the same new one). One namespace, the common commit, gets
 * the plain form: no JSON unnesting to plan.
 */
export async function lockNamespaces(tx: Queryable, t: Tables, all: Namespace[]): Promise<Locked> {
  const namespaces = uniqueSorted(all);
  if (namespaces.length === 1) {
    const res = await tx.query<{ version: unknown }>(
      `insert into ${t.namespaces} as n (namespace) values ($1)
       on conflict (namespace) do update set version = n.version returning version`,
      [namespaces[0]],
    );
    return { namespaces, versions: [Number(res.rows[0]?.version)] };
  }
  const res = await tx.query<{ o: unknown; version: unknown }>(
    `with nss as (select * from ${namespacesCte('$1')}),
     locked as (
       insert into ${t.namespaces} as n (namespace) select ns from nss order by o
       on conflict (namespace) do update set version = n.version returning n.namespace, n.version)
     select nss.o, locked.version from locked join nss on nss.ns = locked.namespace`,
    [namespaces.map((ns) => JSON.stringify(ns))],
  );
  const versions = new Array<number>(namespaces.length).fill(0);
  for (const r of res.rows) versions[Number(r.o) - 1] = Number(r.version);
  return { namespaces, versions };
}

/**
 * Takes the change's once-key, under a row lock held to the commit; false when it was spent: the
 * thread's cursor is not the one the change read its turns after, or the key was applied. The
 * cursor row is created empty on a thread's first change ('' reads as null).
 */
export async function claimOnce(tx: Queryable, t: Tables, once: Once): Promise<boolean> {
  if ('cursor' in once) {
    const res = await tx.query<{ cursor: string }>(
      `insert into ${t.cursors} as c (thread_id, cursor) values ($1, '')
       on conflict (thread_id) do update set cursor = c.cursor returning cursor`,
      [once.cursor.threadId],
    );
    return (res.rows[0]?.cursor || null) === once.cursor.expected;
  }
  const res = await tx.query(`insert into ${t.appliedChanges} (key) values ($1) on conflict do nothing returning key`, [
    once.key,
  ]);
  return res.rowCount === 1;
}

/** The thread's cursor: the last buffered turn a committed change applied (null: none yet). */
export async function readCursor(db: Queryable, t: Tables, threadId: string): Promise<string | null> {
  const res = await db.query<{ cursor: string }>(`select cursor from ${t.cursors} where thread_id = $1`, [threadId]);
  return res.rows[0]?.cursor || null;
}

/** Whether a change with this idempotency key was applied. */
export async function isApplied(db: Queryable, t: Tables, key: string): Promise<boolean> {
  return (await db.query(`select 1 from ${t.appliedChanges} where key = $1`, [key])).rowCount > 0;
}

/**
 * Each write's item as it is now, then each guard's, in one statement; for a key with no row,
 * its last history version (versions never repeat). Read after the namespace locks, so nothing
 * changes them before the commit.
 */
export async function readCurrent(tx: Queryable, t: Tables, change: ChangeSet): Promise<CurrentRow[]> {
  const refs = [...change.writes, ...(change.guards ?? [])];
  if (refs.length === 0) return [];
  const res = await tx.query<{
    version: unknown;
    kind: string | null;
    value: Record<string, unknown> | null;
    expired: boolean | null;
    last_version: unknown;
  }>(
    `select m.version, m.kind, m.value, m.expires_at <= now() as expired,
            case when m.key is null then
              (select h.version from ${t.history} h where h.namespace = r.ns and h.key = r.key order by h.id desc limit 1)
            end as last_version
       from (select u.key, u.idx, ${namespaceFromJson('u.j')} as ns
               from unnest($1::text[], $2::text[]) with ordinality as u(j, key, idx)) r
       left join ${t.memories} m on m.namespace = r.ns and m.key = r.key
      order by r.idx`,
    [refs.map((r) => JSON.stringify(r.namespace)), refs.map((r) => r.key)],
  );
  return res.rows.map((r) => ({
    version: r.version === null ? null : Number(r.version),
    kind: r.kind,
    value: r.value,
    expired: r.expired === true,
    lastVersion: r.last_version === null ? null : Number(r.last_version),
  }));
}

type Stamp = Pick<MemoryItem, 'createdAt' | 'updatedAt' | 'expiresAt'>;

/**
 * The plan's rows in one statement: new items inserted, existing ones updated in place (an
 * expired one revived with a new creation time), removed ones deleted (their vectors cascade),
 * history in order, namespace versions and counts bumped, the thread cursor moved. Returns the
 * timestamps of the puts by write index.
 */
export async function writePlan(tx: Queryable, t: Tables, change: ChangeSet, plan: Plan): Promise<Map<number, Stamp>> {
  const inserts = plan.puts.filter((p) => !p.existed);
  const updates = plan.puts.filter((p) => p.existed);
  const cursor = change.once && 'cursor' in change.once ? change.once.cursor : null;
  const res = await tx.query<{
    namespace: Namespace;
    key: string;
    created_at: Date;
    updated_at: Date;
    expires_at: Date | null;
  }>(
    `with nss as (select * from ${namespacesCte('$1')}),
     ins as (
       insert into ${t.memories} (namespace, key, kind, value, version, expires_at, ttl_ms)
       select nss.ns, p.key, p.kind, p.value::jsonb, p.version, ${expiryAfter('p.ttl_ms')}, p.ttl_ms
         from unnest($2::int[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::bigint[])
              as p(nsi, key, kind, value, version, ttl_ms)
         join nss on nss.o = p.nsi
       returning namespace, key, created_at, updated_at, expires_at),
     upd as (
       update ${t.memories} m set kind = p.kind, value = p.value::jsonb, version = p.version, updated_at = now(),
              expires_at = case when p.keep then m.expires_at else ${expiryAfter('p.ttl_ms')} end,
              ttl_ms = case when p.keep then m.ttl_ms else p.ttl_ms end,
              created_at = case when p.revived then now() else m.created_at end
         from unnest($8::int[], $9::text[], $10::text[], $11::text[], $12::bigint[], $13::bigint[], $14::bool[], $15::bool[])
              as p(nsi, key, kind, value, version, ttl_ms, keep, revived), nss
        where nss.o = p.nsi and m.namespace = nss.ns and m.key = p.key
       returning m.namespace, m.key, m.created_at, m.updated_at, m.expires_at),
     del as (
       delete from ${t.memories} m using unnest($16::int[], $17::text[]) as d(nsi, key), nss
        where nss.o = d.nsi and m.namespace = nss.ns and m.key = d.key),
     hist as (
       insert into ${t.history} (namespace, key, kind, op, version, before, after, actor, thread_id)
       select nss.ns, h.key, h.kind, h.op, h.version, h.before::jsonb, h.after::jsonb, h.actor, $26::text
         from unnest($18::int[], $19::text[], $20::text[], $21::text[], $22::bigint[], $23::text[], $24::text[], $25::text[])
              with ordinality as h(nsi, key, kind, op, version, before, after, actor, ord)
         join nss on nss.o = h.nsi order by h.ord),
     bump as (
       update ${t.namespaces} n set version = n.version + 1, items = n.items + b.delta, updated_at = ${touched('n')}
         from unnest($27::int[], $28::bigint[]) as b(nsi, delta), nss
        where nss.o = b.nsi and n.namespace = nss.ns),
     cur as (update ${t.cursors} set cursor = $30, updated_at = now() where thread_id = $29)
     select namespace, key, created_at, updated_at, expires_at from ins
     union all select namespace, key, created_at, updated_at, expires_at from upd`,
    [
      nsJson(plan.namespaces),
      inserts.map((p) => p.nsi),
      inserts.map((p) => p.key),
      inserts.map((p) => p.kind),
      inserts.map((p) => JSON.stringify(p.value)),
      inserts.map((p) => p.version),
      inserts.map((p) => p.ttlMs),
      updates.map((p) => p.nsi),
      updates.map((p) => p.key),
      updates.map((p) => p.kind),
      updates.map((p) => JSON.stringify(p.value)),
      updates.map((p) => p.version),
      updates.map((p) => p.ttlMs),
      updates.map((p) => p.keepTtl),
      updates.map((p) => p.revived),
      plan.deletes.map((d) => d.nsi),
      plan.deletes.map((d) => d.key),
      plan.history.map((h) => h.nsi),
      plan.history.map((h) => h.key),
      plan.history.map((h) => h.kind),
      plan.history.map((h) => h.op),
      plan.history.map((h) => h.version),
      plan.history.map((h) => (h.before === null ? null : JSON.stringify(h.before))),
      plan.history.map((h) => (h.after === null ? null : JSON.stringify(h.after))),
      plan.history.map((h) => h.actor),
      change.threadId ?? null,
      plan.bumps.map((b) => b.nsi),
      plan.bumps.map((b) => b.delta),
      cursor?.threadId ?? null,
      cursor?.next ?? null,
    ],
  );
  const at = new Map(plan.puts.map((p) => [JSON.stringify([change.writes[p.i]?.namespace, p.key]), p.i]));
  return new Map(
    res.rows.map((r) => [
      at.get(JSON.stringify([r.namespace, r.key])) as number,
      { createdAt: r.created_at, updatedAt: r.updated_at, expiresAt: r.expires_at },
    ]),
  );
}

/**
 * Replaces the indexed fields of every put: the new ones upserted (text, and vector when
 * embedded), those an existing item no longer indexes deleted (no orphan vectors). Embedded
 * fields carry their vectors in one binary array parameter; text-only ones travel apart (a
 * binary array cannot hold a null).
 */
export async function writeFields(
  tx: Queryable,
  t: Tables,
  change: ChangeSet,
  plan: Plan,
  fields: ({ i: number } & IndexedField)[],
  vectorParam: unknown,
): Promise<void> {
  const embedded = fields.filter((f) => f.vector);
  const textOnly = fields.filter((f) => !f.vector);
  const old = plan.puts.filter((p) => p.existed);
  const keyOf = (f: { i: number }) => change.writes[f.i]?.key;
  await tx.query(
    `with nss as (select * from ${namespacesCte('$1')}),
     keep as (
       select * from unnest($2::int[], $3::text[], $4::text[], $5::text[], $6::vector[]) as k(nsi, key, field, text, embedding)
       union all
       select *, null::vector from unnest($7::int[], $8::text[], $9::text[], $10::text[]) as k(nsi, key, field, text)),
     gone as (
       delete from ${t.vectors} x using unnest($11::int[], $12::text[]) as o(nsi, key), nss
        where nss.o = o.nsi and x.namespace = nss.ns and x.key = o.key
          and not exists (select 1 from keep where keep.nsi = o.nsi and keep.key = o.key and keep.field = x.field))
     insert into ${t.vectors} (namespace, key, field, text, embedding)
     select nss.ns, keep.key, keep.field, keep.text, keep.embedding from keep join nss on nss.o = keep.nsi
     on conflict (namespace, key, field) do update set text = excluded.text, embedding = excluded.embedding`,
    [
      nsJson(plan.namespaces),
      embedded.map((f) => plan.nsi[f.i]),
      embedded.map(keyOf),
      embedded.map((f) => f.field),
      embedded.map((f) => f.text),
      vectorParam ?? '{}',
      textOnly.map((f) => plan.nsi[f.i]),
      textOnly.map(keyOf),
      textOnly.map((f) => f.field),
      textOnly.map((f) => f.text),
      old.map((p) => p.nsi),
      old.map((p) => p.key),
    ],
  );
}
