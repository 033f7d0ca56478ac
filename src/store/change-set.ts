import type { Db } from './db.js';
import { assertWritesOnce, planChange, type Conflict } from './change-plan.js';
import { claimAndRead, lockNamespaces, preparedFor } from './change-sql.js';
import { writePlan } from './write-plan-sql.js';
import type { Tables } from './sql.js';
import type { IndexedField, MemoryItem, Namespace } from './types.js';

/**
 * THE change-set writer: every write to the memory tables (memories, their vectors and history,
 * namespace versions, thread cursors, applied change keys) goes through `applyChangeSet`, whoever
 * decided it: a reflection, a consolidation merge, the prompt optimizer, a store put, delete or
 * batch, the TTL sweeper. One transaction per change set, one set of rules:
 *
 *  1. Locks. The namespace rows a change touches (written or only read) are created if missing
 *     and locked in one global order (`compareNamespaces`), before anything else; then the
 *     change's once-key. Every writer locks in this order, so writers never deadlock, and every
 *     write to an item happens under its namespace's lock, which serializes writers of one item.
 *  2. Effect-once. A change may carry a once-key: a thread cursor (the cursor it read its turns
 *     after, and the one it moves to) or an idempotency key (`key`, kept in `applied_changes`).
 *     A cursor that moved, or a key already applied, makes the change a `duplicate`: nothing is
 *     written. Checked before any version, so a re-run of applied work is "already done" whatever
 *     else changed since.
 *  3. Compare-and-set. `reads` are namespace versions the writer decided on (null: lock only);
 *     `ifVersion` on a write and `guards` are item versions. An item's version is its live
 *     version: 0 when it is missing or expired (so `ifVersion: 0` means "must not exist"). A
 *     revert's writes also compare the key's last history row (`ifLastChange`) and the row
 *     whose document they put back (`restores`). Any mismatch is a `conflict` listing every
 *     one, and nothing is written.
 *  4. One expiry rule. An item past its `expires_at` is gone for every reader and writer, swept
 *     or not, judged on the clock after the locks are held (a writer may wait for them past an
 *     expiry; `now()` is its BEGIN). The first write that meets it (a put, a delete, the sweeper) records an `expire`
 *     history row for it, then acts on a missing item: a put inserts (version continues, creation
 *     time restarts), a delete deletes nothing (`deleted: false`).
 *  5. Versions never repeat for a key: a put writes one more than the row's version, or, when the
 *     row is gone, than the key's last history version. A client holding version 1 of a deleted
 *     item cannot compare-and-set over a new item that also starts at 1. (An erase removes the
 *     history too; a key re-used after an erase starts again at 1.)
 *  6. History. Every insert, update, delete and expiry writes one history row (op, version, kind,
 *     before, after, actor, thread), in the same transaction.
 *  7. Namespaces. Each namespace with a history row gets its version bumped once and its item
 *     count adjusted; one only read or locked is left as it was (it must not make others
 *     conflict). `updated_at` never moves back (`touched`).
 *  8. Indexed fields. A put replaces the item's indexed fields (text and vector): fields it no
 *     longer indexes are deleted (no orphan vectors), a delete cascades.
 *  9. Time to live. A put gives the item its TTL (ms from now, on the database's clock), none
 *     (null), or keeps the live item's expiry and duration ('keep'; none for a new item).
 * 10. Validity. A new item holds from its `validFrom` (now when not said); an invalidation keeps
 *     the item and marks when it stopped holding (a version and an `invalidate` history row); a
 *     put over an invalidated item makes it hold again, unless it says `invalidAt` (a revert to
 *     an invalidation). An invalidated item is still live: versions, guards and `ifVersion` see
 *     it. Every history row that sets a document records the validity it left (`valid_from`,
 *     `invalid_at`), so that a revert to it puts both back.
 *
 * One bulk change stands beside change sets: an erase (erase.ts), which locks the namespaces
 * under its prefixes in the same global order and bumps their versions like any write.
 *
 * Planning (which rows, which versions, which conflicts) is pure (change-plan.ts); the SQL is
 * set-based and the same for one write or a thousand (change-sql.ts, write-plan-sql.ts). Vectors are encoded before
 * the transaction: no model is called and nothing slow happens while a connection is held
 * (invariant 8). A TTL refresh on read is not a change (no version, no history; refresh-ttl.ts).
 */

/** Time to live of a put: ms from now, none, or the live item's own. */
export type Ttl = number | null | 'keep';

/**
 * A revert's compare-and-set: the id of the key's last history row when it was read (null: none).
 * Stricter than `ifVersion`, whose 0 is every "missing": a later create-then-delete, an expiry or
 * an erase leaves the live version where it was but writes or removes history rows.
 */
interface Unchanged {
  ifLastChange?: number | null | undefined;
}

export type Write =
  | ({
      op: 'put';
      namespace: Namespace;
      key: string;
      /** Undefined keeps the live item's kind; a new item then gets `defaultKind`. */
      kind?: string | undefined;
      /** Kind of a new item put without `kind` (the change's `defaultKind` when undefined). */
      defaultKind?: string | undefined;
      value: Record<string, unknown>;
      /** The item's indexed fields after the put: texts, with vectors when embedded (none: unindexed). */
      fields: IndexedField[];
      ttl: Ttl;
      /** Compare-and-set on the item's live version (0: must not exist). */
      ifVersion?: number | undefined;
      /** Recorded in history instead of the change's actor. */
      actor?: string | undefined;
      /**
       * Since when the memory holds (ISO time); omitted: now for a new item, unchanged for an
       * existing one. A put makes an invalidated memory valid again.
       */
      validFrom?: string | undefined;
      /**
       * Since when the memory no longer holds (ISO time): the put writes it invalidated, as a
       * revert to an invalidation does. Omitted: the memory holds (an invalidated one again).
       */
      invalidAt?: string | undefined;
      /**
       * A revert's source: the history row whose document the put brings back. The change
       * conflicts unless that row still holds a document and the item has not expired: an erase
       * or an expiry between the revert's read and its write took the document for good.
       */
      restores?: number | undefined;
    } & Unchanged)
  | ({
      op: 'delete';
      namespace: Namespace;
      key: string;
      ifVersion?: number | undefined;
      actor?: string | undefined;
    } & Unchanged)
  /**
   * The memory no longer holds, from `at` (ISO time; omitted: now): kept, with its validity, and
   * left out of searches (kinds that keep their facts' time turn a delete into this).
   */
  | {
      op: 'invalidate';
      namespace: Namespace;
      key: string;
      at?: string | undefined;
      ifVersion?: number | undefined;
      actor?: string | undefined;
    }
  /** The sweeper: removes the item only if it is expired when the change runs. */
  | { op: 'expire'; namespace: Namespace; key: string };

export type Once =
  /** A reflection: its turns were read after `expected` (null: the first), and it moves to `next`. */
  | { cursor: { threadId: string; expected: string | null; next: string } }
  /** Any other writer that may run twice (a retried job, a client re-sending a request). */
  | { key: string };

export interface ChangeSet {
  /** Who made the change (`reflection:<job>`, `consolidation:<job>`, `api`...), for history. */
  actor: string;
  /** The thread whose turns the change comes from, for history. */
  threadId?: string | null | undefined;
  writes: Write[];
  /** Namespaces the change was decided on, at the versions seen (null: lock, do not compare). */
  reads?: { namespace: Namespace; version: number | null }[] | undefined;
  /** Items relied on without being written, at the versions seen. */
  guards?: { namespace: Namespace; key: string; version: number }[] | undefined;
  once?: Once | undefined;
  /** Kind of a new item put without one. */
  defaultKind?: string | undefined;
}

export type WriteResult =
  | { op: 'put'; item: MemoryItem; inserted: boolean }
  | { op: 'delete'; deleted: boolean }
  | { op: 'invalidate'; invalidated: boolean }
  | { op: 'expire'; expired: boolean };

export type ChangeResult =
  | {
      status: 'applied';
      /** One per write, in order. */
      results: WriteResult[];
      counts: { inserted: number; updated: number; deleted: number; invalidated: number; expired: number };
    }
  /** Nothing written: a version the change relied on has moved. */
  | { status: 'conflict'; conflicts: Conflict[] }
  /** Nothing written: the once-key says this change (or a later one of the thread) was applied. */
  | { status: 'duplicate' };

export type { Conflict };

/** A result thrown out of the transaction so that it rolls back. */
class Rollback extends Error {
  constructor(readonly result: ChangeResult) {
    super(result.status);
  }
}

/**
 * Room for a large batch's vectors: the write statement sorts its vector rows to join them with
 * their namespaces, and past work_mem (4 MB by default; a batch of 1,000 puts of 1,536
 * dimensions carries 6 MB) Postgres sorted them on disk, 6 MB of temp file per statement (its
 * log_temp_files). Local to the transaction, and only for batches that need it.
 */
function workMemFor(vectorParam: unknown): { settings?: Record<string, string> } {
  const bytes = Buffer.isBuffer(vectorParam)
    ? vectorParam.length
    : typeof vectorParam === 'string'
      ? vectorParam.length
      : 0;
  if (bytes < 2 * 1024 * 1024) return {};
  return { settings: { work_mem: `${Math.min(1024, Math.ceil((bytes * 3) / (1024 * 1024)))}MB` } };
}

/** Applies one change set in one transaction, by the rules above. */
export async function applyChangeSet(db: Db, t: Tables, change: ChangeSet): Promise<ChangeResult> {
  assertWritesOnce(change);
  const fields = change.writes.flatMap((w, i) => (w.op === 'put' ? w.fields.map((f) => ({ i, ...f })) : []));
  const embedded = fields.filter((f) => f.vector);
  const vectorParam = embedded.length ? await db.vectorArrayParam(embedded.map((f) => f.vector as number[])) : null;
  try {
    return await db.transaction(async (tx) => {
      // The locks and the claim in one round trip (with the begin): the server runs them in
      // order, so the claim's snapshot is taken under the locks; a failed lock fails the claim.
      const [locked, { claimed, current, at }] = await Promise.all([
        lockNamespaces(
          tx,
          t,
          [
            ...change.writes.map((w) => w.namespace),
            ...(change.reads ?? []).map((r) => r.namespace),
            ...(change.guards ?? []).map((g) => g.namespace),
          ],
          (change.reads ?? []).some((r) => r.version !== null),
          preparedFor(change),
        ),
        claimAndRead(tx, t, change),
      ]);
      if (!claimed) throw new Rollback({ status: 'duplicate' });
      const plan = planChange(change, locked, current);
      if ('conflicts' in plan) throw new Rollback({ status: 'conflict', conflicts: plan.conflicts });
      const stamps = await writePlan(tx, t, change, plan, fields, vectorParam, at);
      return { status: 'applied', results: plan.results(stamps), counts: plan.counts } as const;
    }, workMemFor(vectorParam));
  } catch (err) {
    if (err instanceof Rollback) return err.result;
    throw err;
  }
}
