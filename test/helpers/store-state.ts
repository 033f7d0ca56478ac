import type { Runtime } from '../../src/app/runtime.js';
import type { Queryable } from '../../src/store/db.js';
import { tables } from '../../src/store/sql.js';

/**
 * Everything a reflection may change in Postgres, as plain data: memories (with their vectors'
 * fields), history, namespace versions and thread cursors. Two equal states mean nothing was written.
 */
type Doc = Record<string, unknown>;
interface HistoryRow {
  id: number;
  namespace: string[];
  key: string;
  op: string;
  version: number;
  before: Doc | null;
  after: Doc | null;
  actor: string;
  thread_id: string | null;
}

export async function storeState(runtime: Runtime) {
  const t = tables(runtime.store.schema);
  const q = async <R = Doc>(sql: string) => (await runtime.db.query<R>(sql)).rows;
  return {
    memories: await q<{
      namespace: string[];
      key: string;
      kind: string;
      value: Doc;
      version: number;
      fields: string[];
    }>(
      `select m.namespace, m.key, m.kind, m.value, m.version::int, array(select field from ${t.vectors} v where v.namespace = m.namespace and v.key = m.key order by field) as fields
         from ${t.memories} m order by m.namespace, m.key`,
    ),
    history: await q<HistoryRow>(
      `select id::int, namespace, key, op, version::int, before, after, actor, thread_id from ${t.history} order by id`,
    ),
    namespaces: await q<{ namespace: string[]; version: number }>(
      `select namespace, version::int from ${t.namespaces} order by namespace`,
    ),
    cursors: await q<{ thread_id: string; cursor: string }>(
      `select thread_id, cursor from ${t.cursors} order by thread_id`,
    ),
  };
}

/** Memories of a namespace, values only, sorted: what a test asserts the store ended up with. */
export async function memoryValues(runtime: Runtime, namespace: string[]) {
  const t = tables(runtime.store.schema);
  const res = await runtime.db.query(
    `select kind, value from ${t.memories} where namespace = $1 order by value::text`,
    [namespace],
  );
  return res.rows as { kind: string; value: Record<string, unknown> }[];
}

/** Each memory's `content` in `namespace`, sorted: what the consolidation tests compare. */
export async function contentsIn(db: Queryable, schema: string, namespace: string[]): Promise<string[]> {
  const res = await db.query<{ content: string }>(
    `select value->>'content' as content from ${tables(schema).memories} where namespace = $1 order by 1`,
    [namespace],
  );
  return res.rows.map((r) => r.content);
}
