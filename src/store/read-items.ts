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
/** A page of one memory's history. */
export interface HistoryPage {
  limit: number;
  offset: number;
  newest?: boolean;
}

export const HISTORY_BYTES = 'coalesce(octet_length(before::text), 0) + coalesce(octet_length(after::text), 0)';

/**
 * The change log of one memory, oldest first (`newest`: newest first, the page and the budget
 * counted from the latest change); all of it without a page.
 */
export async function readHistory(
  db: Db,
  t: Tables,
  namespace: Namespace,
  key: string,
  page?: HistoryPage,
  budget?: AnswerBudget,
): Promise<HistoryEntry[]> {
  const order = page?.newest ? 'id desc' : 'id';
  const sql = `select h.id, h.op, h.version, h.kind, h.before, h.after, h.actor, h.thread_id, h.created_at, ${validityOf('h')}
       from ${t.history} h where h.namespace = $1 and h.key = $2 order by h.${order} limit $3 offset $4`;
  const params: unknown[] = [namespace, key, page?.limit ?? null, page?.offset ?? 0];
  const res = await db.query(
    budget ? budgeted(sql, order, HISTORY_BYTES, `$${params.push(budget.remaining)}`) : sql,
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
    invalidAt: (r.invalid_at as Date | null) ?? null,
  }));
}

/** How many changes one memory's history holds. */
export async function historyLength(db: Db, t: Tables, namespace: Namespace, key: string): Promise<number> {
  const res = await db.query(`select count(*)::int as n from ${t.history} where namespace = $1 and key = $2`, [
    namespace,
    key,
  ]);
  return Number(res.rows[0]?.n ?? 0);
}

/**
 * The validity a history row's change left: since when the memory held (null: not recorded,
 * a row from before migration 012) and since when it no longer did (null: it holds). An
 * invalidation's row without its time (an import of an older export) dates it by the row.
 */
export interface RowValidity {
  validFrom: Date | null;
  invalidAt: Date | null;
}
const validityOf = (h: string) =>
  `${h}.valid_from, case when ${h}.op = 'invalidate' then coalesce(${h}.invalid_at, ${h}.created_at) else ${h}.invalid_at end as invalid_at`;

/** A document a revert puts back, and what its write compares. */
export interface RevertSource extends RowValidity {
  kind: string;
  after: Record<string, unknown>;
  /** The history row holding it (the write conflicts if an erase or expiry takes it). */
  id: number;
  /** The id of the key's last history row: the write's compare-and-set when none is given. */
  lastChange: number;
  /** The item is past its expiry, not swept yet: its documents are gone with the first write. */
  expired: boolean;
}

/**
 * The first change of one memory at `version` that set a document (an insert, update or
 * invalidation), with the validity it left, or null: what a revert puts back. One row, however
 * long the log.
 */
export async function documentAt(
  db: Db,
  t: Tables,
  namespace: Namespace,
  key: string,
  version: number,
): Promise<RevertSource | null> {
  const res = await db.query<{
    kind: string;
    after: Record<string, unknown>;
    valid_from: Date | null;
    invalid_at: Date | null;
    id: unknown;
    last_change: unknown;
    expired: boolean;
  }>(
    `select h.kind, h.after, ${validityOf('h')}, h.id,
            (select l.id from ${t.history} l where l.namespace = $1 and l.key = $2 order by l.id desc limit 1) as last_change,
            exists (select 1 from ${t.memories} m where m.namespace = $1 and m.key = $2 and not ${alive('m')}) as expired
       from ${t.history} h
      where h.namespace = $1 and h.key = $2 and h.version = $3 and h.after is not null order by h.id limit 1`,
    [namespace, key, version],
  );
  const r = res.rows[0];
  if (!r) return null;
  const { valid_from: validFrom, invalid_at: invalidAt, ...rest } = r;
  return { ...rest, validFrom, invalidAt, id: Number(r.id), lastChange: Number(r.last_change) };
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
  /** The history row's id. */
  id: number;
  before: Record<string, unknown> | null;
  /** The validity `before` had: what the change before this one left. */
  beforeValidity: RowValidity;
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
    id: unknown;
    before: Record<string, unknown> | null;
    valid_from: Date | null;
    invalid_at: Date | null;
  }>(
    // The row before each change is the state it changed: one index probe per change, on
    // (namespace, key, id), and only for changes that had a document before them.
    `select h.namespace, h.key, h.kind, h.op, h.version, h.id, h.before, prev.valid_from, prev.invalid_at
       from ${t.history} h
       left join lateral (select ${validityOf('b')} from ${t.history} b
                           where h.before is not null and b.namespace = h.namespace and b.key = h.key and b.id < h.id
                           order by b.id desc limit 1) prev on true
      where h.actor = ${p.add(actor)} and h.op <> 'expire' and ${prefixCondition('h.namespace', prefix, p)}
      order by h.id limit ${p.add(limit)}`,
    p.values,
  );
  return res.rows.map(({ valid_from, invalid_at, ...r }) => ({
    ...r,
    op: r.op as HistoryEntry['op'],
    version: Number(r.version),
    id: Number(r.id),
    beforeValidity: { validFrom: valid_from, invalidAt: invalid_at },
  }));
}
