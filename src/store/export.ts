import { budgeted } from './answer-budget.js';
import type { Db } from './db.js';
import type { ExportedHistory, ExportedItem } from './export-format.js';
import { compareNamespaces } from './namespace-locks.js';
import { HISTORY_BYTES, VALUE_BYTES } from './read-items.js';
import { alive, namespaceFromJson, Params, prefixCondition, type Tables } from './sql.js';
import type { Namespace } from './types.js';

const iso = (d: Date | null) => (d ? d.toISOString() : null);

/** Rows a page or a history chunk holds at most: small items come 500 to a query, as before. */
const PAGE_ROWS = 500;
/**
 * Stored JSON a page of items, or a chunk of their history, holds at most (the row that passes it
 * included): what bounds an export's memory, whatever its items weigh. Pages of 500 items of
 * 1 MB, and all their history rows in one query, grew a process by 800 MB an export.
 */
export const EXPORT_CHUNK_BYTES = 8 * 1024 * 1024;

/**
 * The items under the prefixes (live ones, invalidated included), a page at a time in
 * (namespace, key) order, each followed by its history rows when asked: what an export streams.
 * Pages are read by keyset, so a long export holds no transaction or cursor open. A page ends
 * at 500 items or EXPORT_CHUNK_BYTES of them, whichever comes first, and its history is read in
 * chunks bounded the same way while the items are yielded: the generator is pulled a line at a
 * time by the answer's stream, so a slow reader holds a page and a chunk, not the export.
 */
export async function* exportItems(
  db: Db,
  t: Tables,
  q: {
    prefixes: Namespace[];
    namespaces?: Namespace[] | undefined;
    history: boolean;
    page?: number;
    chunkBytes?: number;
  },
): AsyncGenerator<ExportedItem | ExportedHistory> {
  const page = q.page ?? PAGE_ROWS;
  const chunkBytes = q.chunkBytes ?? EXPORT_CHUNK_BYTES;
  const prefixes = outermost(q.prefixes);
  // A namespace named exactly, unless a prefix holds it already (its items would come twice).
  const exact = (q.namespaces ?? []).filter((ns) => !prefixes.some((prefix) => holds(prefix, ns)));
  const scopes = [
    ...prefixes.map((prefix) => (p: Params) => prefixCondition('m.namespace', prefix, p)),
    ...exact.map((ns) => (p: Params) => `m.namespace = ${p.add(ns)}::text[]`),
  ];
  for (const scope of scopes) {
    let after: { namespace: Namespace; key: string } | null = null;
    for (;;) {
      const p = new Params();
      const from = after ? `and (m.namespace, m.key) > (${p.add(after.namespace)}::text[], ${p.add(after.key)})` : '';
      const sql = `select m.namespace, m.key, m.kind, m.value, m.version, m.created_at, m.updated_at, m.expires_at, m.ttl_ms,
                m.valid_from, m.invalid_at,
                coalesce((select jsonb_agg(jsonb_build_object('field', v.field, 'text', v.text) order by v.field)
                            from ${t.vectors} v where v.namespace = m.namespace and v.key = m.key and v.text is not null), '[]') as fields
           from ${t.memories} m where ${scope(p)} and ${alive('m')} ${from}
          order by m.namespace, m.key limit ${p.add(page)}`;
      const items = await db.query<Record<string, unknown>>(
        budgeted(sql, 'namespace, key', `${VALUE_BYTES} + octet_length(fields::text)`, p.add(chunkBytes)),
        p.values,
      );
      if (items.rows.length === 0) break;
      const history = q.history ? historyOf(db, t, items.rows, page, chunkBytes) : null;
      let next = await history?.next();
      for (const [i, r] of items.rows.entries()) {
        yield {
          type: 'item',
          namespace: r.namespace as Namespace,
          key: r.key as string,
          kind: r.kind as string,
          value: r.value as ExportedItem['value'],
          version: Number(r.version),
          createdAt: iso(r.created_at as Date) as string,
          updatedAt: iso(r.updated_at as Date) as string,
          expiresAt: iso(r.expires_at as Date | null),
          ttlMs: r.ttl_ms === null ? null : Number(r.ttl_ms),
          validFrom: iso(r.valid_from as Date) as string,
          invalidAt: iso(r.invalid_at as Date | null),
          fields: r.fields as ExportedItem['fields'],
        };
        // The history rows come in the page's order: this item's are the next ones.
        for (; history && next && !next.done && next.value.idx === i + 1; next = await history.next())
          yield next.value.row;
      }
      const last = items.rows.at(-1) as { namespace: Namespace; key: string; answer_spent: unknown };
      after = { namespace: last.namespace, key: last.key };
      if (items.rows.length < page && Number(last.answer_spent) <= chunkBytes) break;
    }
  }
}

/**
 * The history rows of a page's items, in the page's order (`idx`, from 1) and then oldest first,
 * read by keyset in chunks of at most `rows` rows and `bytes` of documents.
 */
async function* historyOf(
  db: Db,
  t: Tables,
  items: Record<string, unknown>[],
  rows: number,
  bytes: number,
): AsyncGenerator<{ idx: number; row: ExportedHistory }> {
  const namespaces = items.map((r) => JSON.stringify(r.namespace));
  const keys = items.map((r) => r.key);
  let after = { idx: 0, id: 0 };
  for (;;) {
    const p = new Params();
    const sql = `select r.idx, h.id, h.namespace, h.key, h.kind, h.op, h.version, h.before, h.after, h.actor, h.thread_id, h.created_at,
            h.valid_from, h.invalid_at
       from unnest(${p.add(namespaces)}::text[], ${p.add(keys)}::text[]) with ordinality as r(j, key, idx)
       join ${t.history} h on h.namespace = ${namespaceFromJson('r.j')} and h.key = r.key
      where (r.idx, h.id) > (${p.add(after.idx)}::bigint, ${p.add(after.id)}::bigint)
      order by r.idx, h.id limit ${p.add(rows)}`;
    const res = await db.query<Record<string, unknown>>(
      budgeted(sql, 'idx, id', HISTORY_BYTES, p.add(bytes)),
      p.values,
    );
    for (const r of res.rows) {
      yield {
        idx: Number(r.idx),
        row: {
          type: 'history',
          namespace: r.namespace as Namespace,
          key: r.key as string,
          kind: r.kind as string,
          op: r.op as ExportedHistory['op'],
          version: Number(r.version),
          before: r.before as ExportedHistory['before'],
          after: r.after as ExportedHistory['after'],
          actor: r.actor as string,
          threadId: (r.thread_id as string | null) ?? null,
          at: (r.created_at as Date).toISOString(),
          // The validity the change left, where it was recorded (migration 012): what a revert
          // on the importing deployment puts back.
          ...(r.valid_from ? { validFrom: (r.valid_from as Date).toISOString() } : {}),
          ...(r.invalid_at ? { invalidAt: (r.invalid_at as Date).toISOString() } : {}),
        },
      };
    }
    const last = res.rows.at(-1);
    if (!last) return;
    after = { idx: Number(last.idx), id: Number(last.id) };
    if (res.rows.length < rows && Number(last.answer_spent) <= bytes) return;
  }
}

/** Whether `prefix` holds `ns` (whole labels). */
const holds = (prefix: Namespace, ns: Namespace) => prefix.length <= ns.length && prefix.every((l, j) => l === ns[j]);

/** Prefixes none of the others holds (an item under two would be exported twice). */
function outermost(prefixes: Namespace[]): Namespace[] {
  const sorted = [...prefixes].sort(compareNamespaces);
  return sorted.filter((p, i) => !sorted.slice(0, i).some((q) => holds(q, p)));
}
