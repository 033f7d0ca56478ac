import { PermanentError } from '../errors.js';
import type { Logger } from '../observability/logger.js';
import type { Db } from './db.js';
import { createPgliteDb } from './pglite.js';
import { createPgDb, type PoolOptions, type StatementOptions } from './pool.js';
import { createReplicaDb } from './replicas.js';

/** Postgres when a URL is given; otherwise the embedded PGlite in its data folder. */
export function openDb(
  opts: { databaseUrl?: string | undefined; pgliteDataDir: string; poolMax: number } & PoolOptions,
  log: Logger,
): Db {
  const { databaseUrl, pgliteDataDir, poolMax, ...pool } = opts;
  return databaseUrl ? createPgDb(databaseUrl, poolMax, log, pool) : createPgliteDb(pgliteDataDir, log);
}

/**
 * The Db for reads that accept replica lag: the read replicas, falling back to `primary`
 * (replicas.ts); null without any, and reads stay on the primary. PGlite has no replicas.
 */
export function openReadDb(
  readUrls: string[] | undefined,
  primary: Db,
  poolMax: number,
  log: Logger,
  pool: StatementOptions = {},
): Db | null {
  if (!readUrls?.length) return null;
  if (primary.backend !== 'postgres')
    throw new PermanentError(
      'DATABASE_READ_URL names read replicas of a Postgres primary, but the store is the embedded PGlite: set DATABASE_URL to the primary, or unset DATABASE_READ_URL',
    );
  return createReplicaDb(readUrls, primary, poolMax, log, pool);
}
