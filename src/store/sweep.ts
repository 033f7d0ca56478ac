import type { Db } from './db.js';
import { namespaceFromJson, touched, type Tables } from './sql.js';
import type { Namespace } from './types.js';
import { namespacesCte, uniqueSorted } from './namespace-locks.js';

/**
 * Deletes up to `batch` expired items, with an `expire` history row each, and bumps the version
 * and item count of their namespaces. Like every writer it locks namespace rows first, in the
 * global order, and only then touches items, so it never deadlocks with puts or reflections.
 */
export async function sweepExpired(db: Db, t: Tables, actor: string, batch: number): Promise<number> {
  const due = await db.query<{ namespace: Namespace; key: string }>(
    `select namespace, key from ${t.memories} where expires_at <= now() order by expires_at limit $1`,
    [batch],
  );
  if (due.rows.length === 0) return 0;
  const namespaces = uniqueSorted(due.rows.map((r) => r.namespace)).map((ns) => JSON.stringify(ns));
  return db.transaction(async (tx) => {
    await tx.query(
      `select 1 from ${namespacesCte('$1')} join ${t.namespaces} n on n.namespace = nss.ns order by nss.o for update of n`,
      [namespaces],
    );
    // Re-checked under the lock: a put may have renewed an item since it was read.
    const res = await tx.query<{ swept: unknown }>(
      `with gone as (
         delete from ${t.memories} m using unnest($1::text[], $2::text[]) as d(j, key)
          where m.namespace = ${namespaceFromJson('d.j')} and m.key = d.key and m.expires_at <= now()
         returning m.namespace, m.key, m.kind, m.value, m.version),
       hist as (
         insert into ${t.history} (namespace, key, kind, op, version, before, after, actor)
         select namespace, key, kind, 'expire', version, value, null, $3::text from gone),
       bump as (
         update ${t.namespaces} n set version = n.version + 1, items = n.items - g.count, updated_at = ${touched('n')}
           from (select namespace, count(*) as count from gone group by namespace) g where n.namespace = g.namespace)
       select count(*) as swept from gone`,
      [due.rows.map((r) => JSON.stringify(r.namespace)), due.rows.map((r) => r.key), actor],
    );
    return Number(res.rows[0]?.swept ?? 0);
  });
}
