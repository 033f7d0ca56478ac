import { lockNamespaces } from './change-sql.js';
import type { Db } from './db.js';
import { namespaceFromJson, Params, prefixCondition, type Tables } from './sql.js';
import type { Namespace } from './types.js';

/**
 * A thread's cursor after an erase: an epoch, not a turn id. A reflection that read the thread's
 * turns before the erase expected another cursor, so its commit is a `duplicate` and writes
 * nothing back (invariant 10); one that starts after reads the (erased) buffer from its start.
 */
export const ERASED_CURSOR = 'erased@';
export const isErasedCursor = (cursor: string | null): boolean => !!cursor?.startsWith(ERASED_CURSOR);

export interface EraseRequest {
  /** Every namespace under these prefixes (whole labels) loses its items and their history. */
  prefixes: Namespace[];
  /** And these namespaces themselves, not those under them (context-namespaces.ts). */
  namespaces?: Namespace[] | undefined;
  /** Threads whose cursor becomes an erase epoch (their buffered turns are erased in Redis). */
  threads: string[];
  actor: string;
  /** What was asked, for the audit row: identifiers only, no content. */
  scope: Record<string, unknown>;
}

export interface EraseCounts {
  namespaces: number;
  items: number;
  historyRows: number;
  threads: number;
}

/**
 * Erases in two steps. First the threads' cursors become an erase epoch, committed on their own:
 * a reflection of them that has not committed yet then cannot (its cursor claim fails), and one
 * committing now is waited for. Only then are the namespaces under the prefixes listed, so that
 * a namespace such a reflection created (a new user's first memories) is among them: listed
 * before the epoch, it was missed, and the erase answered 200 over memories it left in place.
 * Then one transaction, under the writer's lock order: the namespaces are locked (in the global
 * order), their items (vectors cascade) and history rows deleted, their versions bumped (a
 * reflection or merge that read them conflicts) and counts zeroed; one audit row written, with
 * counts and no content. History goes whole rather than kept as tombstones: its `before` and
 * `after` are the erased text, and its keys and versions say nothing an audit needs that the
 * erasure row does not. A failure after the first step leaves epochs and no deletion: the erase
 * answers an error, and erasing again finishes it.
 */
export async function eraseScope(db: Db, t: Tables, req: EraseRequest): Promise<EraseCounts> {
  const at = new Date().toISOString();
  // Sorted: two erases of overlapping threads take the cursor rows in one order.
  const threads = [...new Set(req.threads)].sort();
  if (threads.length)
    await db.query(
      `insert into ${t.cursors} as c (thread_id, cursor) select u, $1 from unnest($2::text[]) as u order by u
       on conflict (thread_id) do update set cursor = excluded.cursor, updated_at = now()`,
      [`${ERASED_CURSOR}${at}`, threads],
    );
  const found = await listUnder(db, t, req.prefixes, req.namespaces ?? []);
  return db.transaction(async (tx) => {
    const locked = found.length ? await lockNamespaces(tx, t, found) : { namespaces: [] };
    const ns = locked.namespaces.map((n) => JSON.stringify(n));
    const res = await tx.query<{ items: unknown; history: unknown }>(
      `with nss as (select ${namespaceFromJson('j')} as ns from unnest($1::text[]) as j),
       items as (delete from ${t.memories} m using nss where m.namespace = nss.ns returning 1),
       hist as (delete from ${t.history} h using nss where h.namespace = nss.ns returning 1),
       bump as (update ${t.namespaces} n set version = n.version + 1, items = 0, updated_at = greatest(n.updated_at, now())
                  from nss where n.namespace = nss.ns)
       select (select count(*) from items) as items, (select count(*) from hist) as history`,
      [ns],
    );
    const counts: EraseCounts = {
      namespaces: ns.length,
      items: Number(res.rows[0]?.items ?? 0),
      historyRows: Number(res.rows[0]?.history ?? 0),
      threads: threads.length,
    };
    await tx.query(`insert into ${t.erasures} (actor, scope, counts) values ($1, $2, $3)`, [
      req.actor,
      JSON.stringify(req.scope),
      JSON.stringify(counts),
    ]);
    return counts;
  });
}

/** The namespaces under the prefixes, and those named exactly, that exist now (rows in the namespaces table). */
async function listUnder(db: Db, t: Tables, prefixes: Namespace[], exact: Namespace[]): Promise<Namespace[]> {
  if (prefixes.length === 0 && exact.length === 0) return [];
  const p = new Params();
  const where = [
    ...prefixes.map((prefix) => prefixCondition('namespace', prefix, p)),
    ...(exact.length
      ? [
          `namespace in (select ${namespaceFromJson('j')} from unnest(${p.add(exact.map((ns) => JSON.stringify(ns)))}::text[]) as j)`,
        ]
      : []),
  ].join(' or ');
  const res = await db.query<{ namespace: Namespace }>(
    `select namespace from ${t.namespaces} where ${where}`,
    p.values,
  );
  return res.rows.map((r) => r.namespace);
}
