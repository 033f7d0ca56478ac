import pgvector from 'pgvector';
import type { Db, Queryable } from './db.js';
import { compareNamespaces } from './namespace-locks.js';
import { expiryAfter, namespaceFromJson, touched, type Tables } from './sql.js';
import type { ApplyResult, ChangeSet, FieldEmbedding, Namespace, NamespaceChange } from './types.js';

class Rollback extends Error {
  constructor(readonly result: ApplyResult) {
    super(result.status);
  }
}

/**
 * Applies one reflection's writes in one transaction (effect-once, invariant 3):
 *  1. lock every namespace row it touches, in a fixed order (no deadlocks), and compare versions;
 *  2. lock the thread cursor and compare it with the one the reflection read;
 *  3. write memories, vectors and history; bump namespace versions; advance the cursor.
 * A mismatch rolls the transaction back before anything is written. A change without a thread
 * (consolidation) skips the cursor steps.
 */
export async function applyChangeSet(db: Db, t: Tables, change: ChangeSet | NamespaceChange): Promise<ApplyResult> {
  try {
    return await db.transaction((tx) => apply(tx, t, change));
  } catch (err) {
    if (err instanceof Rollback) return err.result;
    throw err;
  }
}

/** Throws Rollback on a mismatch; the transaction must then be rolled back. */
async function apply(client: Queryable, t: Tables, change: ChangeSet | NamespaceChange): Promise<ApplyResult> {
  const thread = 'threadId' in change ? change : null;
  // Locks always in one order (namespaces sorted, then the cursor), so writers never deadlock.
  // Each created and locked in turn, in the global order (see lockNamespaces). Two plain
  // statements per namespace rather than lockNamespaces' one for all: a commit touches one or two
  // namespaces, and the batch statement's plan cost more than the round trip it saves (commit p50
  // 4.0-4.2 ms against 3.8-3.9 ms in `npm run bench:formation`, alternating runs).
  const sorted = [...change.namespaceVersions].sort((a, b) => compareNamespaces(a.namespace, b.namespace));
  const current: number[] = [];
  for (const { namespace } of sorted) {
    await client.query(`insert into ${t.namespaces} (namespace) values ($1) on conflict do nothing`, [namespace]);
    const row = await client.query(`select version from ${t.namespaces} where namespace = $1 for update`, [namespace]);
    current.push(Number((row.rows[0] as { version: unknown }).version));
  }
  if (thread) {
    await client.query(`insert into ${t.cursors} (thread_id, cursor) values ($1, '') on conflict do nothing`, [
      thread.threadId,
    ]);
    const cur = await client.query(`select cursor from ${t.cursors} where thread_id = $1 for update`, [
      thread.threadId,
    ]);
    // Checked first: a re-run of applied turns is "already done", whatever else changed since.
    if (((cur.rows[0] as { cursor: string }).cursor || null) !== thread.expectedCursor)
      throw new Rollback({ status: 'stale-cursor' });
  }
  sorted.forEach(({ namespace, version }, i) => {
    if (version !== null && current[i] !== version) throw new Rollback({ status: 'conflict', namespace });
  });
  if (change.guards?.length) {
    const held = await client.query<{ n: unknown }>(
      `select count(*) as n from ${t.memories} m join unnest($1::text[], $2::text[], $3::bigint[]) as g(ns, key, version)
          on m.namespace = ${namespaceFromJson('g.ns')} and m.key = g.key and m.version = g.version`,
      [
        change.guards.map((g) => JSON.stringify(g.namespace)),
        change.guards.map((g) => g.key),
        change.guards.map((g) => g.version),
      ],
    );
    const moved = change.guards.length - Number(held.rows[0]?.n ?? 0);
    if (moved > 0)
      throw new Rollback({ status: 'conflict', namespace: (change.guards[0] as { namespace: Namespace }).namespace });
  }

  const counts = { inserted: 0, updated: 0, deleted: 0 };
  // Item counts per namespace, kept with the version (search uses them to choose exact ranking).
  const delta = new Map<string, number>();
  const count = (namespace: Namespace, d: number) =>
    delta.set(JSON.stringify(namespace), (delta.get(JSON.stringify(namespace)) ?? 0) + d);
  const history = (
    w: { namespace: Namespace; key: string },
    kind: string,
    op: string,
    version: number,
    before: unknown,
    after: unknown,
  ) =>
    client.query(
      `insert into ${t.history} (namespace, key, kind, op, version, before, after, actor, thread_id) values ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
      [w.namespace, w.key, kind, op, version, before, after, change.actor, thread?.threadId ?? null],
    );

  for (const w of change.writes) {
    if (w.op === 'insert') {
      // Versions never repeat for a key: a key that existed before (a profile's fixed key after a
      // delete or expiry) continues from its last version, so a stale `ifVersion` cannot match.
      const res = await client.query<{ version: unknown }>(
        `insert into ${t.memories} (namespace, key, kind, value, expires_at, ttl_ms, version)
         values ($1, $2, $3, $4, ${expiryAfter('$5::bigint')}, $5, 1 + coalesce((select max(version) from ${t.history} where namespace = $1 and key = $2), 0))
         returning version`,
        [w.namespace, w.key, w.kind, w.value, w.ttlMs],
      );
      await writeVectors(client, t, w.namespace, w.key, w.embeddings);
      await history(w, w.kind, 'insert', Number(res.rows[0]?.version ?? 1), null, w.value);
      count(w.namespace, 1);
      counts.inserted++;
    } else if (w.op === 'update') {
      const res = await client.query(
        `with old as (select value from ${t.memories} where namespace = $1 and key = $2 and version = $5)
         update ${t.memories} m set value = $4, kind = $3, version = m.version + 1, updated_at = now(),
                -- A kind without a TTL keeps the expiry the item was given (by the store API),
                -- unless it had passed: a memory the model just rewrote is live again.
                expires_at = case when $6::bigint is not null then ${expiryAfter('$6::bigint')}
                                  when m.expires_at <= now() then null else m.expires_at end,
                ttl_ms = case when $6::bigint is not null then $6::bigint
                              when m.expires_at <= now() then null else m.ttl_ms end
           from old where m.namespace = $1 and m.key = $2
          returning m.version, old.value as before`,
        [w.namespace, w.key, w.kind, w.value, w.expectedVersion, w.ttlMs],
      );
      if (!res.rowCount) throw new Rollback({ status: 'conflict', namespace: w.namespace });
      await writeVectors(client, t, w.namespace, w.key, w.embeddings);
      const row = res.rows[0] as { version: unknown; before: unknown };
      await history(w, w.kind, 'update', Number(row.version), row.before, w.value);
      counts.updated++;
    } else {
      const res = await client.query(
        `delete from ${t.memories} where namespace = $1 and key = $2 and version = $3 returning kind, value, version`,
        [w.namespace, w.key, w.expectedVersion],
      );
      if (!res.rowCount) throw new Rollback({ status: 'conflict', namespace: w.namespace });
      const old = res.rows[0] as { kind: string; version: unknown; value: unknown };
      await history(w, old.kind, 'delete', Number(old.version), old.value, null);
      count(w.namespace, -1);
      counts.deleted++;
    }
  }

  // Bump only what was written: a namespace that was merely read must not make others conflict.
  const written = new Set(change.writes.map((w) => JSON.stringify(w.namespace)));
  for (const { namespace } of sorted.filter((n) => written.has(JSON.stringify(n.namespace)))) {
    await client.query(
      `update ${t.namespaces} n set version = n.version + 1, items = n.items + $2, updated_at = ${touched('n')} where n.namespace = $1`,
      [namespace, delta.get(JSON.stringify(namespace)) ?? 0],
    );
  }
  if (thread)
    await client.query(`update ${t.cursors} set cursor = $2, updated_at = now() where thread_id = $1`, [
      thread.threadId,
      thread.newCursor,
    ]);
  return { status: 'applied', ...counts };
}

/** Replaces a memory's vectors: fields that are gone get no orphan rows (docs/prior-art.md: LangGraph). */
async function writeVectors(
  client: Queryable,
  t: Tables,
  namespace: Namespace,
  key: string,
  embeddings: FieldEmbedding[],
) {
  await client.query(`delete from ${t.vectors} where namespace = $1 and key = $2 and not (field = any($3))`, [
    namespace,
    key,
    embeddings.map((e) => e.field),
  ]);
  if (embeddings.length === 0) return;
  await client.query(
    `insert into ${t.vectors} (namespace, key, field, embedding)
     select $1, $2, f, e::vector from unnest($3::text[], $4::text[]) as u(f, e)
     on conflict (namespace, key, field) do update set embedding = excluded.embedding`,
    [namespace, key, embeddings.map((e) => e.field), embeddings.map((e) => pgvector.toSql(e.vector) as string)],
  );
}
