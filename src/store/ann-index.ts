import type { Db } from './db.js';
import { ANN_INDEX, ident, type Tables } from './sql.js';

/** Whether the HNSW index exists and is valid (a failed CONCURRENTLY build leaves an invalid one). */
export async function annIndexExists(db: Db, t: Tables): Promise<boolean> {
  const res = await db.query<{ ann: boolean }>(
    `select exists (select 1 from pg_index i where i.indexrelid = to_regclass($1) and i.indisvalid) as ann`,
    [t.annIndex],
  );
  return !!res.rows[0]?.ann;
}

/**
 * Builds the HNSW index that large prefix searches use (an operator step, not a migration:
 * keeping it current costs every put an index insert, measured in `npm run bench:store`).
 */
export async function createAnnIndex(db: Db, t: Tables, opts: { maintenanceWorkMem?: string } = {}): Promise<void> {
  // Concurrently on Postgres: puts go on while it builds. PGlite has one connection anyway.
  const concurrently = db.backend === 'postgres' ? 'concurrently' : '';
  // The operator class follows the column's type (vector, or halfvec: migration 009).
  const type = await db.query<{ type: string }>(
    `select format_type(atttypid, atttypmod) as type from pg_attribute where attrelid = to_regclass($1) and attname = 'embedding'`,
    [t.vectors],
  );
  const ops = type.rows[0]?.type.startsWith('halfvec') ? 'halfvec_cosine_ops' : 'vector_cosine_ops';
  // A CONCURRENTLY build that failed or was cancelled leaves an invalid index behind, which
  // searches never use but every put still maintains; `if not exists` would keep it and report
  // it built. Drop it first, so that running the command again is the way to retry a build.
  const invalid = await db.query(`select 1 from pg_index where indexrelid = to_regclass($1) and not indisvalid`, [
    t.annIndex,
  ]);
  if (invalid.rowCount) await db.exec(`drop index ${concurrently} if exists ${t.annIndex}`);
  await db.session(async (s) => {
    // Minutes at a few hundred thousand vectors: lift the pool's statement timeout for this one.
    await s.query(`select set_config('statement_timeout', '0', false)`);
    // PGlite is 32-bit WASM (2 GB of memory in all): it keeps its default.
    if (opts.maintenanceWorkMem && db.backend === 'postgres')
      await s.query(`select set_config('maintenance_work_mem', $1, false)`, [opts.maintenanceWorkMem]);
    await s.exec(
      `create index ${concurrently} if not exists ${ident(ANN_INDEX)} on ${t.vectors} using hnsw (embedding ${ops})`,
    );
  });
}

export async function dropAnnIndex(db: Db, t: Tables): Promise<void> {
  await db.exec(`drop index if exists ${t.annIndex}`);
}
