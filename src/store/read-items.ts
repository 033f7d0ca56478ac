import type { Db } from './db.js';
import { alive, namespaceFromJson, Params, prefixCondition, suffixCondition, type Tables } from './sql.js';
import type { MemoryItem, Namespace, SearchItem } from './types.js';

export const COLUMNS = 'm.namespace, m.key, m.kind, m.value, m.version, m.created_at, m.updated_at, m.expires_at';

/** Items by (namespace, key), in the order asked; null for a missing or expired one. */
export async function getItems(db: Db, t: Tables, refs: { namespace: Namespace; key: string }[]): Promise<(MemoryItem | null)[]> {
  if (refs.length === 0) return [];
  const res = await db.query(
    `select r.idx::int as idx, ${COLUMNS}
       from unnest($1::text[], $2::text[]) with ordinality as r(j, key, idx)
       join ${t.memories} m on m.namespace = ${namespaceFromJson('r.j')} and m.key = r.key
      where ${alive('m')}`,
    [refs.map((r) => JSON.stringify(r.namespace)), refs.map((r) => r.key)],
  );
  const found = new Map(res.rows.map((r) => [Number(r.idx), toItem(r)]));
  return refs.map((_, i) => found.get(i + 1) ?? null);
}

export interface ListNamespacesQuery {
  prefix?: Namespace | undefined;
  suffix?: Namespace | undefined;
  maxDepth?: number | undefined;
  limit: number;
  offset: number;
}

/** Namespaces holding at least one live item, truncated to `maxDepth` labels, sorted byte-wise. */
export async function listNamespaces(db: Db, t: Tables, q: ListNamespacesQuery): Promise<Namespace[]> {
  const p = new Params();
  const where = ['n.items > 0', `exists (select 1 from ${t.memories} m where m.namespace = n.namespace and ${alive('m')})`];
  if (q.prefix) where.push(prefixCondition('n.namespace', q.prefix, p));
  if (q.suffix) where.push(suffixCondition('n.namespace', q.suffix, p));
  const ns = q.maxDepth ? `n.namespace[1:${p.add(q.maxDepth)}::int]` : 'n.namespace';
  const res = await db.query<{ ns: Namespace }>(
    `select distinct ${ns} as ns from ${t.namespaces} n where ${where.join(' and ')}
      order by ns limit ${p.add(q.limit)} offset ${p.add(q.offset)}`,
    p.values,
  );
  return res.rows.map((r) => r.ns);
}

export function toItem(r: Record<string, unknown>): MemoryItem {
  return {
    namespace: r.namespace as Namespace,
    key: r.key as string,
    kind: r.kind as string,
    value: r.value as Record<string, unknown>,
    version: Number(r.version),
    createdAt: r.created_at as Date,
    updatedAt: r.updated_at as Date,
    expiresAt: (r.expires_at as Date | null) ?? null,
  };
}

export function scored(r: Record<string, unknown>): SearchItem {
  return { ...toItem(r), score: r.distance === null || r.distance === undefined ? null : 1 - Number(r.distance) };
}
