import { parseEnvOf } from '../src/config/env.js';
import { coerceError } from '../src/errors.js';
import { exitAfterOutput } from '../src/app/exit-after-output.js';
import { createLogger } from '../src/observability/logger.js';
import { MemoryDb } from '../src/store/memory-db.js';
import { checkDimensions } from '../src/store/migrate.js';
import { openDb } from '../src/store/open.js';

// One-shot: build (or with --drop, remove) the HNSW index that large prefix searches use.
// An operator's choice, not a migration: every put then pays an index insert (see docs/performance.md's
// benchmark). Built CONCURRENTLY on Postgres, so writes go on meanwhile.
//   npm run store:ann-index [-- --drop] [-- --maintenance-work-mem 2GB]
try {
  const env = parseEnvOf([
    'DATABASE_URL',
    'DATABASE_SCHEMA',
    'PGLITE_DATA_DIR',
    'EMBEDDING_DIMENSIONS',
    'LOG_LEVEL',
    'LOG_PRETTY',
  ]);
  const log = createLogger({ level: env.LOG_LEVEL, pretty: env.LOG_PRETTY }).child({ process: 'ann-index' });
  const db = openDb({ databaseUrl: env.DATABASE_URL, pgliteDataDir: env.PGLITE_DATA_DIR, poolMax: 2 }, log);
  try {
    await checkDimensions(db, env.DATABASE_SCHEMA, env.EMBEDDING_DIMENSIONS);
    const store = new MemoryDb(db, env.DATABASE_SCHEMA, log);
    const memArg = process.argv.indexOf('--maintenance-work-mem');
    if (process.argv.includes('--drop')) await store.dropAnnIndex();
    else await store.createAnnIndex({ maintenanceWorkMem: memArg > 0 ? process.argv[memArg + 1] : '1GB' });
  } finally {
    await db.close();
  }
} catch (err) {
  process.stderr.write(`engram ann-index: ${coerceError(err).message}\n`);
  await exitAfterOutput(1);
}
