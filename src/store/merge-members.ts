import type { Db } from './db.js';
import { alive, type Tables } from './sql.js';
import type { Namespace } from './types.js';

/**
 * A memory shown to the model for a merge, as the merge needs it to write safely: its version
 * and the id of its last history row (compared at the commit), its validity, and its lifetime.
 */
export interface MergeMember {
  key: string;
  kind: string;
  version: number;
  value: Record<string, unknown>;
  /** The id of the key's last history row: unlike the version, never repeats after an erase. */
  lastChange: number | null;
  /** Invalidated (no longer holds): not merged, its text must not flow into a memory that holds. */
  invalidated: boolean;
  /** When it expires, in ms since the epoch; null: never. */
  expiresAtMs: number | null;
  /** Since when it holds, in ms since the epoch. */
  validFromMs: number;
  /** The duration it was given, renewed on writes and reads; null for rows older than migration 003. */
  ttlMs: number | null;
}

/**
 * The live memories of `keys` in one namespace, with their last history row, in one statement:
 * the version and the history row are read in one snapshot, so they agree.
 */
export async function readMergeMembers(
  db: Db,
  t: Tables,
  namespace: Namespace,
  keys: string[],
): Promise<MergeMember[]> {
  if (keys.length === 0) return [];
  const res = await db.query<{
    key: string;
    kind: string;
    version: unknown;
    value: Record<string, unknown>;
    last_change: unknown;
    invalidated: boolean;
    expires_ms: unknown;
    ttl_ms: unknown;
    valid_ms: unknown;
  }>(
    `select m.key, m.kind, m.version, m.value, m.invalid_at is not null as invalidated,
            extract(epoch from m.expires_at) * 1000 as expires_ms, m.ttl_ms,
            extract(epoch from m.valid_from) * 1000 as valid_ms,
            (select h.id from ${t.history} h where h.namespace = m.namespace and h.key = m.key
              order by h.id desc limit 1) as last_change
       from ${t.memories} m
      where m.namespace = $1 and m.key = any($2::text[]) and ${alive('m')}`,
    [namespace, keys],
  );
  return res.rows.map((r) => ({
    key: r.key,
    kind: r.kind,
    version: Number(r.version),
    value: r.value,
    lastChange: r.last_change === null ? null : Number(r.last_change),
    invalidated: r.invalidated,
    expiresAtMs: r.expires_ms === null ? null : Number(r.expires_ms),
    ttlMs: r.ttl_ms === null ? null : Number(r.ttl_ms),
    validFromMs: Number(r.valid_ms),
  }));
}
