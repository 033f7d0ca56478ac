import type { Plan, Stamp } from './change-plan.js';
import type { ChangeSet } from './change-set.js';
import { nsJson, preparedFor } from './change-sql.js';
import type { Tx } from './db.js';
import { namespacesCte } from './namespace-locks.js';
import { expiryAfter, Params, touched, type Tables } from './sql.js';
import type { IndexedField, Namespace } from './types.js';

/**
 * The change-set writer's one write statement (rules in change-set.ts), after change-sql.ts's
 * locks and claim: set-based, the same for one write or a thousand, the commit riding with it.
 */

/**
 * The plan's rows in one statement: new items inserted, existing ones updated in place (an
 * expired one revived with a new creation time), invalidations marked, removed ones deleted
 * (their vectors cascade), history in order, namespace versions and counts bumped, the thread
 * cursor moved, and the puts' indexed fields replaced (`fieldsCtes`). Returns the times of the
 * puts by write index.
 */
export async function writePlan(
  tx: Tx,
  t: Tables,
  change: ChangeSet,
  plan: Plan,
  fields: ({ i: number } & IndexedField)[],
  vectorParam: unknown,
  claimedAt: string | null,
): Promise<Map<number, Stamp>> {
  const p = new Params();
  const now = claimedAt === null ? 'now()' : `${p.add(claimedAt)}::timestamptz`;
  const col: Col = (rows, pick, type) => `${p.add(rows.map(pick))}::${type}[]`;
  const cursor = change.once && 'cursor' in change.once ? change.once.cursor : null;
  const nss = namespacesCte(p.add(nsJson(plan.namespaces)));
  // The transaction's last statement: its commit rides in the same round trip.
  const res = await tx.queryAndCommit<StampRow>(
    `with nss as (select * from ${nss}),
     ins as (${insertSql(
       t,
       plan.puts.filter((x) => !x.existed),
       col,
       now,
     )}),
     upd as (${updateSql(
       t,
       plan.puts.filter((x) => x.existed),
       col,
       now,
     )}),
     inv as (${invalidateSql(t, plan.invalidations, col, now)}),
     del as (
       delete from ${t.memories} m
        using unnest(${col(plan.deletes, (x) => x.nsi, 'int')}, ${col(plan.deletes, (x) => x.key, 'text')}) as x(nsi, key), nss
        where nss.o = x.nsi and m.namespace = nss.ns and m.key = x.key),
     hist as (${historySql(t, plan.history, change.threadId ?? null, col, p, now)}),${scrubCte(t, plan.history, col)}
     bump as (
       update ${t.namespaces} n set version = n.version + 1, items = n.items + b.delta, updated_at = ${touched('n', now)}
         from unnest(${col(plan.bumps, (b) => b.nsi, 'int')}, ${col(plan.bumps, (b) => b.delta, 'bigint')}) as b(nsi, delta), nss
        where nss.o = b.nsi and n.namespace = nss.ns),
     cur as (update ${t.cursors} set cursor = ${p.add(cursor?.next ?? null)}, updated_at = ${now}
              where thread_id = ${p.add(cursor?.threadId ?? null)})${plan.puts.length ? fieldsCtes(t, change, plan, fields, vectorParam, p) : ''}
     select ${STAMP} from ins union all select ${STAMP} from upd`,
    p.values,
    preparedFor(change),
  );
  const at = new Map(plan.puts.map((x) => [JSON.stringify([change.writes[x.i]?.namespace, x.key]), x.i]));
  return new Map(
    res.rows.map((r) => [
      at.get(JSON.stringify([r.namespace, r.key])) as number,
      {
        createdAt: r.created_at,
        updatedAt: r.updated_at,
        expiresAt: r.expires_at,
        validFrom: r.valid_from,
        invalidAt: r.invalid_at,
      },
    ]),
  );
}

/** One column of a set-based write: the rows' values as one array parameter of a SQL type. */
type Col = <T>(rows: T[], pick: (row: T) => unknown, type: string) => string;
type PlannedPuts = Plan['puts'];
/** What a put row returns: its key and the times the database set. */
const STAMP = 'namespace, key, created_at, updated_at, expires_at, valid_from, invalid_at';
interface StampRow {
  namespace: Namespace;
  key: string;
  created_at: Date;
  updated_at: Date;
  expires_at: Date | null;
  valid_from: Date;
  invalid_at: Date | null;
}

/** New rows (and rows replacing nothing): valid from the write's time or now, invalid if it says. */
function insertSql(t: Tables, inserts: PlannedPuts, col: Col, now: string): string {
  return `insert into ${t.memories} (namespace, key, kind, value, version, created_at, updated_at, expires_at, ttl_ms,
                                     valid_from, invalid_at, invalidated_by)
       select nss.ns, x.key, x.kind, x.value::jsonb, x.version, ${now}, ${now}, ${expiryAfter('x.ttl_ms', now)}, x.ttl_ms,
              coalesce(x.valid_from, ${now}), x.invalid_at, x.invalidated_by
         from unnest(${col(inserts, (x) => x.nsi, 'int')}, ${col(inserts, (x) => x.key, 'text')}, ${col(inserts, (x) => x.kind, 'text')},
                     ${col(inserts, (x) => JSON.stringify(x.value), 'text')}, ${col(inserts, (x) => x.version, 'bigint')},
                     ${col(inserts, (x) => x.ttlMs, 'bigint')}, ${col(inserts, (x) => x.validFrom, 'timestamptz')},
                     ${col(inserts, (x) => x.invalidAt, 'timestamptz')}, ${col(inserts, (x) => x.invalidatedBy, 'text')})
              as x(nsi, key, kind, value, version, ttl_ms, valid_from, invalid_at, invalidated_by)
         join nss on nss.o = x.nsi
       returning ${STAMP}`;
}

/**
 * Puts over existing rows: a 'keep' put keeps the expiry, a revived (expired) row restarts its
 * creation and validity, and a put makes an invalidated item hold again unless it says since
 * when it does not (a revert to an invalidation).
 */
function updateSql(t: Tables, updates: PlannedPuts, col: Col, now: string): string {
  return `update ${t.memories} m set kind = x.kind, value = x.value::jsonb, version = x.version, updated_at = ${now},
              expires_at = case when x.keep then m.expires_at else ${expiryAfter('x.ttl_ms', now)} end,
              ttl_ms = case when x.keep then m.ttl_ms else x.ttl_ms end,
              created_at = case when x.revived then ${now} else m.created_at end,
              valid_from = coalesce(x.valid_from, case when x.revived then ${now} else m.valid_from end),
              invalid_at = x.invalid_at, invalidated_by = x.invalidated_by
         from unnest(${col(updates, (x) => x.nsi, 'int')}, ${col(updates, (x) => x.key, 'text')}, ${col(updates, (x) => x.kind, 'text')},
                     ${col(updates, (x) => JSON.stringify(x.value), 'text')}, ${col(updates, (x) => x.version, 'bigint')},
                     ${col(updates, (x) => x.ttlMs, 'bigint')}, ${col(updates, (x) => x.keepTtl, 'bool')},
                     ${col(updates, (x) => x.revived, 'bool')}, ${col(updates, (x) => x.validFrom, 'timestamptz')},
                     ${col(updates, (x) => x.invalidAt, 'timestamptz')}, ${col(updates, (x) => x.invalidatedBy, 'text')})
              as x(nsi, key, kind, value, version, ttl_ms, keep, revived, valid_from, invalid_at, invalidated_by), nss
        where nss.o = x.nsi and m.namespace = nss.ns and m.key = x.key
       returning ${STAMP.replace(/(\w+)/g, 'm.$1')}`;
}

/** Invalidations: the item stays, with a new version and the time it stopped holding. */
function invalidateSql(t: Tables, invalidations: Plan['invalidations'], col: Col, now: string): string {
  return `update ${t.memories} m set version = x.version, updated_at = ${now}, invalid_at = coalesce(x.at, ${now}),
              invalidated_by = x.actor
         from unnest(${col(invalidations, (x) => x.nsi, 'int')}, ${col(invalidations, (x) => x.key, 'text')},
                     ${col(invalidations, (x) => x.version, 'bigint')}, ${col(invalidations, (x) => x.at, 'timestamptz')},
                     ${col(invalidations, (x) => x.actor, 'text')})
              as x(nsi, key, version, at, actor), nss
        where nss.o = x.nsi and m.namespace = nss.ns and m.key = x.key
       returning m.namespace, m.key, m.valid_from, m.invalid_at`;
}

/**
 * History rows in the plan's order (ordinality), with the change's thread. A row that sets a
 * document (a put's, an invalidation's) records the validity its write left, from the written
 * rows themselves (`ins`, `upd`, `inv`): what a revert to its version puts back. A key is written
 * once per change, and its other row (an expiry before a put) sets no document.
 */
function historySql(
  t: Tables,
  history: Plan['history'],
  threadId: string | null,
  col: Col,
  p: Params,
  now: string,
): string {
  const json = (v: unknown) => (v === null ? null : JSON.stringify(v));
  return `insert into ${t.history} (namespace, key, kind, op, version, before, after, actor, thread_id, valid_from, invalid_at, created_at)
       select nss.ns, h.key, h.kind, h.op, h.version, h.before::jsonb, h.after::jsonb, h.actor, ${p.add(threadId)}::text,
              w.valid_from, w.invalid_at, ${now}
         from unnest(${col(history, (h) => h.nsi, 'int')}, ${col(history, (h) => h.key, 'text')},
                     ${col(history, (h) => h.kind, 'text')}, ${col(history, (h) => h.op, 'text')},
                     ${col(history, (h) => h.version, 'bigint')}, ${col(history, (h) => json(h.before), 'text')},
                     ${col(history, (h) => json(h.after), 'text')}, ${col(history, (h) => h.actor, 'text')})
              with ordinality as h(nsi, key, kind, op, version, before, after, actor, ord)
         join nss on nss.o = h.nsi
         left join (select namespace, key, valid_from, invalid_at from ins
                    union all select namespace, key, valid_from, invalid_at from upd
                    union all select namespace, key, valid_from, invalid_at from inv) w
           on h.after is not null and w.namespace = nss.ns and w.key = h.key
        order by h.ord`;
}

/**
 * An expired key's earlier history rows lose their documents (versions, actors and times stay:
 * a put after the expiry takes its version past the last one). The statement's own new rows
 * are not among them: a data-modifying CTE does not see another's rows. Only in a change that
 * finds an expired row, so that the common commit's statement stays as it was.
 */
function scrubCte(t: Tables, history: Plan['history'], col: Col): string {
  const expired = history.filter((h) => h.op === 'expire');
  if (!expired.length) return '';
  return `
     scrub as (update ${t.history} h set before = null, after = null
         from unnest(${col(expired, (h) => h.nsi, 'int')}, ${col(expired, (h) => h.key, 'text')}) as x(nsi, key), nss
        where nss.o = x.nsi and h.namespace = nss.ns and h.key = x.key
          and (h.before is not null or h.after is not null)),`;
}

/**
 * The CTEs that replace the indexed fields of every put, part of `writePlan`'s statement: the new
 * ones upserted (text, and vector when embedded), those an existing item no longer indexes
 * deleted (no orphan vectors). Embedded fields carry their vectors in one binary array
 * parameter; text-only ones travel apart (a binary array cannot hold a null). In one statement
 * with the items' own rows: a new item's vectors meet the foreign key at the statement's end,
 * once the item is inserted, and no row is written twice (a key has one write, and `gone` deletes
 * only the fields `keep` does not write).
 */
function fieldsCtes(
  t: Tables,
  change: ChangeSet,
  plan: Plan,
  fields: ({ i: number } & IndexedField)[],
  vectorParam: unknown,
  p: Params,
): string {
  const embedded = fields.filter((f) => f.vector);
  const textOnly = fields.filter((f) => !f.vector);
  const old = plan.puts.filter((x) => x.existed);
  const keyOf = (f: { i: number }) => change.writes[f.i]?.key;
  const col = <T>(rows: T[], pick: (row: T) => unknown, type: string) => `${p.add(rows.map(pick))}::${type}[]`;
  // The vectors unnested in the select list, which streams the rows: unnest in FROM is a function
  // scan that stores its whole result first, on disk past work_mem (4 MB by default; a batch of
  // 1,000 puts of 1,536 dimensions carries 6 MB: log_temp_files showed a 6 MB file per
  // statement). Not materialized either: `vec` reads the rows as they come, and `gone` reads
  // them again only for items that existed.
  return `,
     keep as not materialized (
       select unnest(${col(embedded, (f) => plan.nsi[f.i], 'int')}) as nsi, unnest(${col(embedded, keyOf, 'text')}) as key,
              unnest(${col(embedded, (f) => f.field, 'text')}) as field, unnest(${col(embedded, (f) => f.text, 'text')}) as text,
              unnest(${p.add(vectorParam ?? '{}')}::vector[]) as embedding
       union all
       select *, null::vector from unnest(${col(textOnly, (f) => plan.nsi[f.i], 'int')}, ${col(textOnly, keyOf, 'text')},
                                          ${col(textOnly, (f) => f.field, 'text')}, ${col(textOnly, (f) => f.text, 'text')})
              as k(nsi, key, field, text)),
     gone as (
       delete from ${t.vectors} x using unnest(${col(old, (x) => x.nsi, 'int')}, ${col(old, (x) => x.key, 'text')}) as o(nsi, key), nss
        where nss.o = o.nsi and x.namespace = nss.ns and x.key = o.key
          and not exists (select 1 from keep where keep.nsi = o.nsi and keep.key = o.key and keep.field = x.field)),
     vec as (
       insert into ${t.vectors} (namespace, key, field, text, embedding)
       select nss.ns, keep.key, keep.field, keep.text, keep.embedding from keep join nss on nss.o = keep.nsi
       on conflict (namespace, key, field) do update set text = excluded.text, embedding = excluded.embedding)`;
}
