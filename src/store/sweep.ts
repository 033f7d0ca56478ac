import { applyChangeSet } from './change-set.js';
import type { Db } from './db.js';
import type { Tables } from './sql.js';
import type { Namespace } from './types.js';

/**
 * Removes up to `batch` expired items through the change-set writer (an `expire` history row
 * each, namespace versions and counts bumped, all under the namespace locks). The writer checks
 * expiry again under the locks: an item a put renewed since this read is left alone.
 */
export async function sweepExpired(db: Db, t: Tables, actor: string, batch: number): Promise<number> {
  const due = await db.query<{ namespace: Namespace; key: string }>(
    `select namespace, key from ${t.memories} where expires_at <= now() order by expires_at limit $1`,
    [batch],
  );
  if (due.rows.length === 0) return 0;
  const applied = await applyChangeSet(db, t, {
    actor,
    writes: due.rows.map((r) => ({ op: 'expire' as const, namespace: r.namespace, key: r.key })),
  });
  return applied.status === 'applied' ? applied.counts.expired : 0;
}
