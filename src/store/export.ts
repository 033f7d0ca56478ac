import type { Db } from './db.js';
import type { ExportedHistory, ExportedItem } from './export-format.js';
import { compareNamespaces } from './namespace-locks.js';
import { alive, namespaceFromJson, Params, prefixCondition, type Tables } from './sql.js';
import type { Namespace } from './types.js';

const iso = (d: Date | null) => (d ? d.toISOString() : null);

/**
 * The items under the prefixes (live ones, invalidated included), a page at a time in
 * (namespace, key) order, each followed by its history rows when asked: what an export streams.
 * Pages are read by keyset, so a long export holds no transaction or cursor open.
 */
export async function* exportItems(
  db: Db,
  t: Tables,
  q: { prefixes: Namespace[]; history: boolean; page?: number },
): AsyncGenerator<ExportedItem | ExportedHistory> {
  const page = q.page ?? 500;
  for (const prefix of outermost(q.prefixes)) {
    let after: { namespace: Namespace; key: string } | null = null;
    for (;;) {
      const p = new Params();
      const from = after ? `and (m.namespace, m.key) > (${p.add(after.namespace)}::text[], ${p.add(after.key)})` : '';
      const items = await db.query<Record<string, unknown>>(
        `select m.namespace, m.key, m.kind, m.value, m.version, m.created_at, m.updated_at, m.expires_at, m.ttl_ms,
                m.valid_from, m.invalid_at,
                coalesce((select jsonb_agg(jsonb_build_object('field', v.field, 'text', v.text) order by v.field)
                            from ${t.vectors} v where v.namespace = m.namespace and v.key = m.key and v.text is not null), '[]') as fields
           from ${t.memories} m where ${prefixCondition('m.namespace', prefix, p)} and ${alive('m')} ${from}
          order by m.namespace, m.key limit ${p.add(page)}`,
        p.values,
      );
      if (items.rows.length === 0) break;
      const history = q.history ? await historyOf(db, t, items.rows) : new Map<string, ExportedHistory[]>();
      for (const r of items.rows) {
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
        yield* history.get(JSON.stringify([r.namespace, r.key])) ?? [];
      }
      const last = items.rows.at(-1) as { namespace: Namespace; key: string };
      after = { namespace: last.namespace, key: last.key };
      if (items.rows.length < page) break;
    }
  }
}

async function historyOf(db: Db, t: Tables, items: Record<string, unknown>[]): Promise<Map<string, ExportedHistory[]>> {
  const res = await db.query<Record<string, unknown>>(
    `select h.namespace, h.key, h.kind, h.op, h.version, h.before, h.after, h.actor, h.thread_id, h.created_at
       from unnest($1::text[], $2::text[]) as r(j, key)
       join ${t.history} h on h.namespace = ${namespaceFromJson('r.j')} and h.key = r.key
      order by h.id`,
    [items.map((r) => JSON.stringify(r.namespace)), items.map((r) => r.key)],
  );
  const out = new Map<string, ExportedHistory[]>();
  for (const r of res.rows) {
    const id = JSON.stringify([r.namespace, r.key]);
    out.set(id, [
      ...(out.get(id) ?? []),
      {
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
      },
    ]);
  }
  return out;
}

/** Prefixes none of the others holds (an item under two would be exported twice). */
function outermost(prefixes: Namespace[]): Namespace[] {
  const sorted = [...prefixes].sort(compareNamespaces);
  return sorted.filter(
    (p, i) => !sorted.slice(0, i).some((q) => q.length <= p.length && q.every((l, j) => l === p[j])),
  );
}
