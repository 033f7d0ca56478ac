import { budgeted, type AnswerBudget } from './answer-budget.js';
import type { Db } from './db.js';
import { alive, namespaceFromJson, Params, prefixCondition, refreshDue, suffixCondition, type Tables } from './sql.js';
import type { HistoryEntry, MemoryItem, Namespace, SearchItem } from './types.js';

/**
 * What every read selects. `ttl_due` says, on the database's clock, whether a TTL refresh would
 * renew the item (see refresh-ttl.ts): reads of items that are not due send no refresh at all.
 */
export const COLUMNS = `m.namespace, m.key, m.kind, m.value, m.version, m.created_at, m.updated_at, m.expires_at, m.valid_from, m.invalid_at, ${refreshDue('m')} as ttl_due`;

/** What an item read spends of an answer's budget (answer-budget.ts): its value as JSON text. */
export const VALUE_BYTES = 'octet_length(value::text)';

/**
 * Items read while their TTL refresh was due. Kept beside the items rather than in them: it is
 * the store's bookkeeping, not part of the item callers see or the API returns. Weak, so that
 * an item the caller drops is forgotten with it.
 */
const dueWhenRead = new WeakSet<MemoryItem>();

/** Whether a TTL refresh would renew this item when it was read (false for items not read here). */
export const isRefreshDue = (item: MemoryItem): boolean => dueWhenRead.has(item);

/** Items by (namespace, key), in the order asked; null for a missing or expired one. */
export async function getItems(
  db: Db,
  t: Tables,
  refs: { namespace: Namespace; key: string }[],
  budget?: AnswerBudget,
): Promise<(MemoryItem | null)[]> {
  if (refs.length === 0) return [];
  const sql = `select r.idx::int as idx, ${COLUMNS}
       from unnest($1::text[], $2::text[]) with ordinality as r(j, key, idx)
       join ${t.memories} m on m.namespace = ${namespaceFromJson('r.j')} and m.key = r.key
      where ${alive('m')}`;
  const params: unknown[] = [refs.map((r) => JSON.stringify(r.namespace)), refs.map((r) => r.key)];
  // One item cannot pass a budget by more than itself (its size is bounded when written): it is
  // measured beside its columns, not cut by the windowed sum, which took a get from 0.27 to 0.40
  // ms at p50 (`npm run bench:store`, "get, TTL item").
  const cut = !budget
    ? sql
    : refs.length === 1
      ? sql.replace(`${COLUMNS}`, `${COLUMNS}, ${VALUE_BYTES.replace('value', 'm.value')} as answer_spent`)
      : budgeted(sql, 'idx', VALUE_BYTES, `$${params.push(budget.remaining)}`);
  const res = await db.query(cut, params);
  budget?.spend(res.rows);
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
  const where = [
    'n.items > 0',
    `exists (select 1 from ${t.memories} m where m.namespace = n.namespace and ${alive('m')})`,
  ];
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
  const item: MemoryItem = {
    namespace: r.namespace as Namespace,
    key: r.key as string,
    kind: r.kind as string,
    value: r.value as Record<string, unknown>,
    version: Number(r.version),
    createdAt: r.created_at as Date,
    updatedAt: r.updated_at as Date,
    expiresAt: (r.expires_at as Date | null) ?? null,
    validFrom: r.valid_from as Date,
    invalidAt: (r.invalid_at as Date | null) ?? null,
  };
  if (r.ttl_due === true) dueWhenRead.add(item);
  return item;
}

/** The item itself gets its score (not a copy), so that it stays the object `dueWhenRead` knows. */
export function scored(r: Record<string, unknown>): SearchItem {
  return Object.assign(toItem(r), {
    score: r.distance === null || r.distance === undefined ? null : 1 - Number(r.distance),
  });
}

/** What a history row spends of an answer's budget: its documents before and after, as JSON text. */
export const HISTORY_BYTES = 'coalesce(octet_length(before::text), 0) + coalesce(octet_length(after::text), 0)';

/** The change log of one memory, oldest first; all of it without a page. */
export async function readHistory(
  db: Db,
  t: Tables,
  namespace: Namespace,
  key: string,
  page?: { limit: number; offset: number },
  budget?: AnswerBudget,
): Promise<HistoryEntry[]> {
  const sql = `select id, op, version, kind, before, after, actor, thread_id, created_at from ${t.history}
      where namespace = $1 and key = $2 order by id limit $3 offset $4`;
  const params: unknown[] = [namespace, key, page?.limit ?? null, page?.offset ?? 0];
  const res = await db.query(
    budget ? budgeted(sql, 'id', HISTORY_BYTES, `$${params.push(budget.remaining)}`) : sql,
    params,
  );
  budget?.spend(res.rows);
  return res.rows.map((r) => ({
    op: r.op as HistoryEntry['op'],
    version: Number(r.version),
    kind: r.kind as string,
    before: r.before as Record<string, unknown> | null,
    after: r.after as Record<string, unknown> | null,
    actor: r.actor as string,
    threadId: r.thread_id as string | null,
    at: r.created_at as Date,
  }));
}

/**
 * The first change of one memory at `version` that set a document (an insert, update or
 * invalidation), or null: what a revert puts back. One row, however long the log.
 */
export async function documentAt(
  db: Db,
  t: Tables,
  namespace: Namespace,
  key: string,
  version: number,
): Promise<{ kind: string; after: Record<string, unknown> } | null> {
  const res = await db.query<{ kind: string; after: Record<string, unknown> }>(
    `select kind, after from ${t.history}
      where namespace = $1 and key = $2 and version = $3 and after is not null order by id limit 1`,
    [namespace, key, version],
  );
  return res.rows[0] ?? null;
}

/** Each namespace's version, in the order asked (0 for one never written), in one statement. */
export async function namespaceVersions(db: Db, t: Tables, namespaces: Namespace[]): Promise<number[]> {
  const res = await db.query<{ version: unknown }>(
    `select coalesce(n.version, 0) as version
       from unnest($1::text[]) with ordinality as r(j, idx)
       left join ${t.namespaces} n on n.namespace = ${namespaceFromJson('r.j')}
      order by r.idx`,
    [namespaces.map((ns) => JSON.stringify(ns))],
  );
  return res.rows.map((r) => Number(r.version));
}

/** A change one actor made, as revert needs it. */
export interface ActorChange {
  namespace: Namespace;
  key: string;
  kind: string;
  op: HistoryEntry['op'];
  version: number;
  before: Record<string, unknown> | null;
}

/** Every change an actor made (under a prefix), oldest first; expiries are the clock's, not its. */
export async function changesBy(
  db: Db,
  t: Tables,
  actor: string,
  prefix: Namespace,
  limit: number,
): Promise<ActorChange[]> {
  const p = new Params();
  const res = await db.query<{
    namespace: Namespace;
    key: string;
    kind: string;
    op: string;
    version: unknown;
    before: Record<string, unknown> | null;
  }>(
    `select namespace, key, kind, op, version, before from ${t.history}
      where actor = ${p.add(actor)} and op <> 'expire' and ${prefixCondition('namespace', prefix, p)}
      order by id limit ${p.add(limit)}`,
    p.values,
  );
  return res.rows.map((r) => ({ ...r, op: r.op as HistoryEntry['op'], version: Number(r.version) }));
}
