import { lockNamespaces } from './change-sql.js';
import type { Db, Queryable } from './db.js';
import type { ExportedHistory, ExportedItem } from './export-format.js';
import { namespacesCte } from './namespace-locks.js';
import { namespaceFromJson, touched, type Tables } from './sql.js';
import type { Namespace } from './types.js';

/** An exported item with the vectors the importing deployment computed for its fields. */
export type RestoredItem = ExportedItem & { vectors: (number[] | undefined)[] };

/**
 * Restores exported items and their history, as they were: versions, times, validity, history
 * rows with their actors and times. The import's one exception to the writer's history rule (it
 * writes the history it is given, none of its own), under the writer's lock order, in one
 * transaction per batch. It only fills what is empty: a key that has a row or any history here is
 * a conflict (returned, nothing written), since merging two histories of one key has no meaning.
 * An item whose expiry has passed, on the database's clock as every expiry, is left out with its
 * history and counted apart (`expired`): it expired between its export and now, and an export
 * taken now would not hold it either; written, it was counted as imported and invisible at once.
 */
export async function restoreItems(
  db: Db,
  t: Tables,
  items: RestoredItem[],
  history: ExportedHistory[],
): Promise<
  { restored: number; history: number; expired: number } | { taken: { namespace: Namespace; key: string }[] }
> {
  const embedded = items.flatMap((item, i) =>
    item.fields.flatMap((f, j) =>
      item.vectors[j] ? [{ i, field: f.field, text: f.text, vector: item.vectors[j] }] : [],
    ),
  );
  const textOnly = items.flatMap((item, i) =>
    item.fields.flatMap((f, j) => (item.vectors[j] ? [] : [{ i, field: f.field, text: f.text }])),
  );
  const vectorParam = embedded.length ? await db.vectorArrayParam(embedded.map((e) => e.vector)) : '{}';
  const keys = { ns: items.map((i) => JSON.stringify(i.namespace)), key: items.map((i) => i.key) };
  return db.transaction(async (tx) => {
    const locked = await lockNamespaces(tx, t, [...items.map((i) => i.namespace), ...history.map((h) => h.namespace)]);
    const taken = await takenKeys(tx, t, keys);
    if (taken.length) return { taken };
    const written = await insertRows(tx, t, locked.namespaces, items, history);
    await insertFields(tx, t, keys, embedded, textOnly, vectorParam);
    return { restored: written.items, history: written.history, expired: items.length - written.items };
  });
}

type Keys = { ns: string[]; key: string[] };

/** Keys that have a row or any history here: an import fills only what is empty. */
async function takenKeys(tx: Queryable, t: Tables, keys: Keys): Promise<{ namespace: Namespace; key: string }[]> {
  const taken = await tx.query<{ namespace: Namespace; key: string }>(
    `select r.ns as namespace, r.key from (select ${namespaceFromJson('u.j')} as ns, u.key from unnest($1::text[], $2::text[]) as u(j, key)) r
        where exists (select 1 from ${t.memories} m where m.namespace = r.ns and m.key = r.key)
           or exists (select 1 from ${t.history} h where h.namespace = r.ns and h.key = r.key)`,
    [keys.ns, keys.key],
  );
  return taken.rows;
}

/**
 * The items and their history rows as exported, but for expired items and theirs, and each
 * namespace's version and count. Returns the rows written.
 */
async function insertRows(
  tx: Queryable,
  t: Tables,
  namespaces: Namespace[],
  items: RestoredItem[],
  history: ExportedHistory[],
): Promise<{ items: number; history: number }> {
  const nsi = new Map(namespaces.map((ns, i) => [JSON.stringify(ns), i + 1]));
  const at = (ns: Namespace) => nsi.get(JSON.stringify(ns)) as number;
  const res = await tx.query<{ items: number; history: number }>(
    `with nss as (select * from ${namespacesCte('$1')}),
       ins as (
         insert into ${t.memories} (namespace, key, kind, value, version, created_at, updated_at, expires_at, ttl_ms, valid_from, invalid_at)
         select nss.ns, x.key, x.kind, x.value::jsonb, x.version, x.created, x.updated, x.expires, x.ttl, x.valid_from, x.invalid_at
           from unnest($2::int[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::timestamptz[], $8::timestamptz[],
                       $9::timestamptz[], $10::bigint[], $11::timestamptz[], $12::timestamptz[])
                as x(nsi, key, kind, value, version, created, updated, expires, ttl, valid_from, invalid_at)
           join nss on nss.o = x.nsi
          where x.expires is null or x.expires > clock_timestamp()
         returning namespace, key),
       hist as (
         insert into ${t.history} (namespace, key, kind, op, version, before, after, actor, thread_id, created_at, valid_from, invalid_at)
         select nss.ns, h.key, h.kind, h.op, h.version, h.before::jsonb, h.after::jsonb, h.actor, h.thread, h.at, h.valid_from, h.invalid_at
           from unnest($13::int[], $14::text[], $15::text[], $16::text[], $17::bigint[], $18::text[], $19::text[], $20::text[],
                       $21::text[], $22::timestamptz[], $23::timestamptz[], $24::timestamptz[])
                with ordinality as h(nsi, key, kind, op, version, before, after, actor, thread, at, valid_from, invalid_at, ord)
           join nss on nss.o = h.nsi
          where exists (select 1 from ins where ins.namespace = nss.ns and ins.key = h.key)
          order by h.ord
         returning 1),
       counted as (
         update ${t.namespaces} n set version = n.version + 1, items = n.items + c.n, updated_at = ${touched('n')}
           from (select namespace, count(*) as n from ins group by namespace) c where n.namespace = c.namespace)
     select (select count(*) from ins)::int as items, (select count(*) from hist)::int as history`,
    [
      namespaces.map((ns) => JSON.stringify(ns)),
      items.map((i) => at(i.namespace)),
      items.map((i) => i.key),
      items.map((i) => i.kind),
      items.map((i) => JSON.stringify(i.value)),
      items.map((i) => i.version),
      items.map((i) => i.createdAt),
      items.map((i) => i.updatedAt),
      items.map((i) => i.expiresAt),
      items.map((i) => i.ttlMs),
      items.map((i) => i.validFrom),
      items.map((i) => i.invalidAt),
      history.map((h) => at(h.namespace)),
      history.map((h) => h.key),
      history.map((h) => h.kind),
      history.map((h) => h.op),
      history.map((h) => h.version),
      history.map((h) => (h.before ? JSON.stringify(h.before) : null)),
      history.map((h) => (h.after ? JSON.stringify(h.after) : null)),
      history.map((h) => h.actor),
      history.map((h) => h.threadId),
      history.map((h) => h.at),
      history.map((h) => h.validFrom ?? null),
      history.map((h) => h.invalidAt ?? null),
    ],
  );
  return res.rows[0] as { items: number; history: number };
}

/**
 * The items' indexed fields: with the vectors computed here, or text only where none was. Only
 * those of items insertRows wrote: the keys were empty, so a row there is the one it wrote.
 */
async function insertFields(
  tx: Queryable,
  t: Tables,
  keys: Keys,
  embedded: { i: number; field: string; text: string }[],
  textOnly: { i: number; field: string; text: string }[],
  vectorParam: unknown,
): Promise<void> {
  await tx.query(
    `insert into ${t.vectors} (namespace, key, field, text, embedding)
       select y.ns, y.key, y.field, y.text, y.embedding
         from (select ${namespaceFromJson('x.j')} as ns, x.key, x.field, x.text, x.embedding
                 from (select * from unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::vector[]) as e(j, key, field, text, embedding)
                       union all
                       select *, null::vector from unnest($6::text[], $7::text[], $8::text[], $9::text[]) as o(j, key, field, text)) x) y
        where exists (select 1 from ${t.memories} m where m.namespace = y.ns and m.key = y.key)`,
    [
      embedded.map((e) => keys.ns[e.i]),
      embedded.map((e) => keys.key[e.i]),
      embedded.map((e) => e.field),
      embedded.map((e) => e.text),
      vectorParam,
      textOnly.map((e) => keys.ns[e.i]),
      textOnly.map((e) => keys.key[e.i]),
      textOnly.map((e) => e.field),
      textOnly.map((e) => e.text),
    ],
  );
}
