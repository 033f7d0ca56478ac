import type { Queryable } from './db.js';
import { namespaceFromJson, type Tables } from './sql.js';
import type { Namespace } from './types.js';

/**
 * Every writer of memories (puts, deletes, reflections, merges, the sweeper) locks the rows of
 * the namespaces it touches first, in this one order, so writers never deadlock.
 */
export function compareNamespaces(a: Namespace, b: Namespace): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    if (a[i] !== b[i]) return (a[i] as string) < (b[i] as string) ? -1 : 1;
  }
  return a.length - b.length;
}

export function uniqueSorted(namespaces: Namespace[]): Namespace[] {
  const unique = new Map(namespaces.map((ns) => [JSON.stringify(ns), ns]));
  return [...unique.values()].sort(compareNamespaces);
}

/**
 * The namespaces of a batch, sent as JSON texts (a ragged list of text[] is no Postgres array),
 * as rows (o, ns) in the batch's lock order.
 */
export function namespacesCte(param: string): string {
  return `(select u.o, ${namespaceFromJson('u.j')} as ns from unnest(${param}::text[]) with ordinality as u(j, o)) as nss`;
}

/**
 * Creates and locks each namespace row of a store batch in turn, in the global order, in one
 * statement (a conflicting row is locked even though `where false` updates nothing). Creating
 * all missing rows first and locking after held a new row while waiting for an older one, and a
 * writer locking the older one and then creating the same new one deadlocked with it. (A
 * reflection's commit, one or two namespaces, does the same one namespace at a time: apply.ts.)
 */
export async function lockNamespaces(tx: Queryable, t: Tables, namespaces: Namespace[]): Promise<void> {
  await tx.query(
    `insert into ${t.namespaces} as n (namespace) select ns from ${namespacesCte('$1')} order by o
     on conflict (namespace) do update set version = n.version where false`,
    [uniqueSorted(namespaces).map((ns) => JSON.stringify(ns))],
  );
}
