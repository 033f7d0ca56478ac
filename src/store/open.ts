import type { Logger } from '../observability/logger.js';
import type { Db } from './db.js';
import { createPgliteDb } from './pglite.js';
import { createPgDb } from './pool.js';

/** Postgres when a URL is given; otherwise the embedded PGlite in its data folder. */
export function openDb(
  opts: { databaseUrl?: string | undefined; pgliteDataDir: string; poolMax: number; queryTimeoutMs?: number },
  log: Logger,
): Db {
  return opts.databaseUrl
    ? createPgDb(opts.databaseUrl, opts.poolMax, log, { queryTimeoutMs: opts.queryTimeoutMs })
    : createPgliteDb(opts.pgliteDataDir, log);
}
