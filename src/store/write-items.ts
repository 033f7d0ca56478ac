import { InputError } from '../errors.js';
import type { Db, Queryable } from './db.js';
import { lockNamespaces, namespacesCte, uniqueSorted } from './namespace-locks.js';
import { expiryAfter, touched, type Tables } from './sql.js';
import type { ItemWrite, ItemWriteResult, Namespace } from './types.js';

interface Current {
  idx: number;
  version: string | number | null;
  kind: string | null;
  value: Record<string, unknown> | null;
  expired: boolean | null;
  last_version: string | number | null;
}

interface HistoryRow {
  nsi: number;
  actor: string;
  key: string;
  kind: string;
  op: 'insert' | 'update' | 'delete' | 'expire';
  version: number;
  before: unknown;
  after: unknown;
}

export interface WriteDefaults {
  /** Recorded for writes that do not name their own. */
  actor: string;
  /** Kind of a new item put without one (a live item keeps its own). */
  kind: string;
}

/**
 * Puts and deletes of the store API, all in one transaction whatever the batch size, with a
 * handful of set-based statements (unnest arrays), never one statement per item:
 *  1. create or lock each namespace row in one global order (the same order as reflections, so
 *     writers never deadlock); every writer of `memories` holds the lock of the item's
 *     namespace, which is what serializes concurrent writers of one item;
 *  2. read the current rows and check `ifVersion` (compare-and-set: a stale write fails with 409
 *     and nothing of the batch is written);
 *  3. upsert/delete memories, write history, bump namespace versions and item counts;
 *  4. replace vectors, deleting those of fields that are gone.
 * Vectors are encoded before the transaction; no model is called while a connection is held.
 */
export async function writeItems(
  db: Db,
  t: Tables,
  writes: ItemWrite[],
  defaults: WriteDefaults,
): Promise<ItemWriteResult[]> {
  const { actor } = defaults;
  if (writes.length === 0) return [];
  const namespaces = uniqueSorted(writes.map((w) => w.namespace));
  const nsIndex = new Map(namespaces.map((ns, i) => [JSON.stringify(ns), i + 1]));
  const nsi = writes.map((w) => nsIndex.get(JSON.stringify(w.namespace)) as number);
  const nsParam = namespaces.map((ns) => JSON.stringify(ns));
  const vectors = writes.flatMap((w, i) => (w.op === 'put' ? w.embeddings.map((e) => ({ i, ...e })) : []));
  const vectorParam = vectors.length ? await db.vectorArrayParam(vectors.map((v) => v.vector)) : null;
  const nss = namespacesCte('$1');

  return db.transaction(async (tx) => {
    await lockNamespaces(tx, t, namespaces);

    const current = await readCurrent(tx, t, nsParam, nsi, writes);
    const conflicts = writes.flatMap((w, i) => {
      const c = current[i] as Current;
      const actual = c.version !== null && !c.expired ? Number(c.version) : 0;
      return w.ifVersion !== undefined && w.ifVersion !== actual
        ? [{ namespace: w.namespace, key: w.key, expected: w.ifVersion, actual }]
        : [];
    });
    if (conflicts.length) {
      const first = conflicts[0] as (typeof conflicts)[number];
      throw new InputError(
        `version conflict: ${JSON.stringify(first.namespace)} / ${JSON.stringify(first.key)} is at version ${first.actual}, not ${first.expected}` +
          (conflicts.length > 1 ? ` (and ${conflicts.length - 1} more)` : ''),
        { conflicts },
        409,
      );
    }

    const history: HistoryRow[] = [];
    const delta = new Map<number, number>();
    const puts: { w: Extract<ItemWrite, { op: 'put' }>; i: number; kind: string; version: number; existed: boolean }[] =
      [];
    const deletes: { w: ItemWrite; i: number }[] = [];
    const results = writes.map((w, i): ItemWriteResult | undefined => {
      const c = current[i] as Current;
      const n = nsi[i] as number;
      const existed = c.version !== null;
      const visible = existed && !c.expired;
      if (existed && c.expired) {
        // Swept on the spot, so the audit trail shows the expiry before what replaces it.
        history.push({
          nsi: n,
          actor: w.actor ?? actor,
          key: w.key,
          kind: c.kind as string,
          op: 'expire',
          version: Number(c.version),
          before: c.value,
          after: null,
        });
      }
      if (w.op === 'delete') {
        if (!existed) return { op: 'delete', deleted: false };
        deletes.push({ w, i });
        delta.set(n, (delta.get(n) ?? 0) - 1);
        if (visible)
          history.push({
            nsi: n,
            actor: w.actor ?? actor,
            key: w.key,
            kind: c.kind as string,
            op: 'delete',
            version: Number(c.version),
            before: c.value,
            after: null,
          });
        return { op: 'delete', deleted: visible };
      }
      // Versions never repeat for a key, even after a delete: a client holding version 1 of a
      // deleted item cannot compare-and-set over a new item that also starts at 1.
      const version = existed ? Number(c.version) + 1 : Number(c.last_version ?? 0) + 1;
      // Read under the namespace lock, so no other writer can relabel the item in between.
      const kind = w.kind ?? (visible ? (c.kind as string) : defaults.kind);
      puts.push({ w, i, kind, version, existed });
      if (!existed) delta.set(n, (delta.get(n) ?? 0) + 1);
      history.push({
        nsi: n,
        actor: w.actor ?? actor,
        key: w.key,
        kind,
        op: visible ? 'update' : 'insert',
        version,
        before: visible ? c.value : null,
        after: w.value,
      });
      return undefined; // filled in once the row's timestamps are known
    });

    const changed = [...new Set(history.map((h) => h.nsi))];
    const written = await tx.query<{
      namespace: Namespace;
      key: string;
      created_at: Date;
      updated_at: Date;
      expires_at: Date | null;
    }>(
      `with nss as (select * from ${nss}),
       up as (
         insert into ${t.memories} as m (namespace, key, kind, value, version, expires_at, ttl_ms)
         select nss.ns, p.key, p.kind, p.value::jsonb, p.version, ${expiryAfter('p.ttl_ms')}, p.ttl_ms
           from unnest($2::int[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::bigint[])
                as p(nsi, key, kind, value, version, ttl_ms)
           join nss on nss.o = p.nsi
         on conflict (namespace, key) do update set kind = excluded.kind, value = excluded.value, version = excluded.version,
           expires_at = excluded.expires_at, ttl_ms = excluded.ttl_ms, updated_at = now(),
           created_at = case when m.expires_at <= now() then now() else m.created_at end
         returning m.namespace, m.key, m.created_at, m.updated_at, m.expires_at),
       del as (
         delete from ${t.memories} m using unnest($8::int[], $9::text[]) as d(nsi, key), nss
          where nss.o = d.nsi and m.namespace = nss.ns and m.key = d.key),
       hist as (
         insert into ${t.history} (namespace, key, kind, op, version, before, after, actor)
         select nss.ns, h.key, h.kind, h.op, h.version, h.before::jsonb, h.after::jsonb, h.actor
           from unnest($11::int[], $12::text[], $13::text[], $14::text[], $15::bigint[], $16::text[], $17::text[], $10::text[])
                with ordinality as h(nsi, key, kind, op, version, before, after, actor, ord)
           join nss on nss.o = h.nsi order by h.ord),
       bump as (
         update ${t.namespaces} n set version = n.version + 1, items = n.items + b.delta, updated_at = ${touched('n')}
           from unnest($18::int[], $19::bigint[]) as b(nsi, delta), nss
          where nss.o = b.nsi and n.namespace = nss.ns)
       select namespace, key, created_at, updated_at, expires_at from up`,
      [
        nsParam,
        puts.map((p) => nsi[p.i]),
        puts.map((p) => p.w.key),
        puts.map((p) => p.kind),
        puts.map((p) => JSON.stringify(p.w.value)),
        puts.map((p) => p.version),
        puts.map((p) => p.w.ttlMs),
        deletes.map((d) => nsi[d.i]),
        deletes.map((d) => d.w.key),
        history.map((h) => h.actor),
        history.map((h) => h.nsi),
        history.map((h) => h.key),
        history.map((h) => h.kind),
        history.map((h) => h.op),
        history.map((h) => h.version),
        history.map((h) => (h.before === null ? null : JSON.stringify(h.before))),
        history.map((h) => (h.after === null ? null : JSON.stringify(h.after))),
        changed,
        changed.map((n) => delta.get(n) ?? 0),
      ],
    );

    if (puts.length) {
      // Items that existed may hold vectors of fields they no longer have: delete those.
      const old = puts.filter((p) => p.existed);
      await tx.query(
        `with nss as (select * from ${nss}),
         keep as (select * from unnest($2::int[], $3::text[], $4::text[], $5::vector[]) as k(nsi, key, field, embedding)),
         gone as (
           delete from ${t.vectors} x using unnest($6::int[], $7::text[]) as o(nsi, key), nss
            where nss.o = o.nsi and x.namespace = nss.ns and x.key = o.key
              and not exists (select 1 from keep where keep.nsi = o.nsi and keep.key = o.key and keep.field = x.field))
         insert into ${t.vectors} (namespace, key, field, embedding)
         select nss.ns, keep.key, keep.field, keep.embedding from keep join nss on nss.o = keep.nsi
         on conflict (namespace, key, field) do update set embedding = excluded.embedding`,
        [
          nsParam,
          vectors.map((v) => nsi[v.i]),
          vectors.map((v) => writes[v.i]?.key),
          vectors.map((v) => v.field),
          vectorParam ?? '{}',
          old.map((p) => nsi[p.i]),
          old.map((p) => p.w.key),
        ],
      );
    }

    const stamps = new Map(written.rows.map((r) => [JSON.stringify([r.namespace, r.key]), r]));
    for (const p of puts) {
      const s = stamps.get(JSON.stringify([p.w.namespace, p.w.key]));
      if (!s) throw new Error(`put of ${JSON.stringify([p.w.namespace, p.w.key])} returned no row`);
      results[p.i] = {
        op: 'put',
        item: {
          namespace: p.w.namespace,
          key: p.w.key,
          kind: p.kind,
          value: p.w.value,
          version: p.version,
          createdAt: s.created_at,
          updatedAt: s.updated_at,
          expiresAt: s.expires_at,
        },
      };
    }
    return results as ItemWriteResult[];
  });
}

/** The current row of each write's item (expired or not), and the key's last version ever. */
async function readCurrent(
  tx: Queryable,
  t: Tables,
  nsParam: string[],
  nsi: number[],
  writes: ItemWrite[],
): Promise<Current[]> {
  const res = await tx.query<Current>(
    `select w.idx::int as idx, m.version, m.kind, m.value, m.expires_at <= now() as expired,
            case when m.key is null then
              (select h.version from ${t.history} h where h.namespace = nss.ns and h.key = w.key order by h.id desc limit 1)
            end as last_version
       from unnest($2::int[], $3::text[]) with ordinality as w(nsi, key, idx)
       join ${namespacesCte('$1')} on nss.o = w.nsi
       left join ${t.memories} m on m.namespace = nss.ns and m.key = w.key
      order by w.idx`,
    [nsParam, nsi, writes.map((w) => w.key)],
  );
  return res.rows;
}
