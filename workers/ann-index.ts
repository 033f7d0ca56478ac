import { z } from 'zod';
import { commandArgs } from '../src/app/command-args.js';
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
const usage = `usage: npm run store:ann-index [-- --maintenance-work-mem <size>]
       npm run store:ann-index -- --drop
  (no flag)                        build the HNSW index CONCURRENTLY (again, when a build failed)
  --maintenance-work-mem <size>    Postgres' memory for the build, such as 512MB or 2GB (default 1GB)
  --drop                           remove the index`;

/** A Postgres memory setting as maintenance_work_mem takes it: kB when no unit is given. */
const memorySize = z
  .string()
  .regex(/^\d+(kB|MB|GB|TB)?$/, '--maintenance-work-mem takes a size such as 512MB or 2GB (units kB, MB, GB, TB)');
const argsSchema = z
  .object({
    drop: z.boolean().default(false),
    'maintenance-work-mem': memorySize.optional(),
    positionals: z.array(z.string()).max(0, 'store:ann-index takes no argument but its flags'),
  })
  .refine((a) => !(a.drop && a['maintenance-work-mem']), '--maintenance-work-mem has no use with --drop');

try {
  const parsed = commandArgs(
    process.argv.slice(2),
    { drop: { type: 'boolean' }, 'maintenance-work-mem': { type: 'string' } },
    argsSchema,
    usage,
  );
  if (parsed.help) {
    process.stdout.write(`${usage}\n`);
    await exitAfterOutput(0);
  } else {
    const args = parsed.args;
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
      if (args.drop) await store.dropAnnIndex();
      else await store.createAnnIndex({ maintenanceWorkMem: args['maintenance-work-mem'] ?? '1GB' });
    } finally {
      await db.close();
    }
  }
} catch (err) {
  process.stderr.write(`engram ann-index: ${coerceError(err).message}\n`);
  await exitAfterOutput(1);
}
