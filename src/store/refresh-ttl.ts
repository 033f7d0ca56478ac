import type { Db } from './db.js';
import { isRefreshDue } from './read-items.js';
import { alive, expiryAfter, namespaceFromJson, refreshDue, type Tables } from './sql.js';
import type { MemoryItem } from './types.js';

/**
 * TTL refresh on read (LangGraph's `refresh_ttl`): the items a get or search returned get
 * `expires_at = now() + ttl_ms` again, in ONE statement per read, and come back with their new
 * expiry. Only live items with a recorded duration are touched: an item that expired between
 * the read and this statement stays expired (a read never revives anything), and items written
 * before migration 003 have no duration to renew. Only the version that was read: if a put
 * replaced the item in between, the new version keeps the expiry its put gave it, and the
 * reader's copy does not claim an expiry that belongs to another version.
 *
 * An item refreshed within the last 1% of its TTL is left alone: a memory recalled on every
 * turn would otherwise cost a row update (and a WAL flush) per read for a few seconds of life.
 * The read itself says which items are due (read-items.ts, `ttl_due`), so a read of items that
 * are all fresh, or have no TTL, sends no statement at all.
 *
 * A refresh is not a change to the memory: value, kind, version and `updated_at` stay, the
 * namespace version is not bumped and no history row is written. Versions are for
 * compare-and-set on content; bumping them on reads would fail every writer that read the
 * item in between (and every reflection's namespace check) for no change at all.
 *
 * Unlike writers, it takes no namespace lock, so reads never queue behind or serialize with
 * each other. It locks its rows with SKIP LOCKED and so never waits: an item a writer holds is
 * being put (which sets its own expiry), rewritten or deleted, and is simply not refreshed by
 * this read. Never waiting also means it cannot join a lock cycle with writers, which lock
 * namespaces first and items after.
 */
export async function refreshTtl<T extends MemoryItem>(db: Db, t: Tables, items: T[]): Promise<T[]> {
  const due = items.filter(isRefreshDue);
  if (due.length === 0) return items;
  const res = await db.query<{ namespace: string[]; key: string; expires_at: Date }>(
    // The read's condition again: the row may have changed since (a put, another reader's
    // refresh). It also wants an expiry: a duration without one (a put by a process from before
    // migration 003) gives none.
    `with due as (
       select m.namespace, m.key
         from unnest($1::text[], $2::text[], $3::bigint[]) as r(j, key, version)
         join ${t.memories} m on m.namespace = ${namespaceFromJson('r.j')} and m.key = r.key and m.version = r.version
        where ${refreshDue('m')} and ${alive('m')}
          for update of m skip locked)
     update ${t.memories} m set expires_at = ${expiryAfter('m.ttl_ms', 'now()')}
       from due where m.namespace = due.namespace and m.key = due.key
     returning m.namespace, m.key, m.expires_at`,
    [due.map((i) => JSON.stringify(i.namespace)), due.map((i) => i.key), due.map((i) => i.version)],
  );
  const renewed = new Map(res.rows.map((r) => [JSON.stringify([r.namespace, r.key]), r.expires_at]));
  return items.map((i) => {
    const expiresAt = renewed.get(JSON.stringify([i.namespace, i.key]));
    return expiresAt ? { ...i, expiresAt } : i;
  });
}
