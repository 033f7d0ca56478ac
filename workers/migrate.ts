#!/usr/bin/env node
import { z } from 'zod';
import { commandArgs } from '../src/app/command-args.js';
import { parseEnvOf } from '../src/config/env.js';
import { coerceError } from '../src/errors.js';
import { exitAfterOutput } from '../src/app/exit-after-output.js';
import { createLogger } from '../src/observability/logger.js';
import { migrate } from '../src/store/migrate.js';
import { openDb } from '../src/store/open.js';

// One-shot: apply pending migrations and exit (the compose `migrate` service, CI, deploys).
// Reads only the variables it needs, so it runs without model settings. Without DATABASE_URL it
// migrates the embedded PGlite folder (while no engram process holds it).
const usage = `usage: npm run migrate
  applies the pending migrations to DATABASE_SCHEMA in DATABASE_URL (the embedded PGlite in
  PGLITE_DATA_DIR when unset), with EMBEDDING_DIMENSIONS, STORE_TEXT_SEARCH_CONFIG and
  STORE_VECTOR_STORAGE for a new schema; takes no argument`;
const argsSchema = z.object({ positionals: z.array(z.string()).max(0, 'migrate takes no argument') });

try {
  // Any argument is refused before anything connects: `migrate -- --help` used to migrate.
  if (commandArgs(process.argv.slice(2), {}, argsSchema, usage).help) {
    process.stdout.write(`${usage}\n`);
    await exitAfterOutput(0);
  }
  const env = parseEnvOf([
    'DATABASE_URL',
    'DATABASE_SCHEMA',
    'PGLITE_DATA_DIR',
    'EMBEDDING_DIMENSIONS',
    'STORE_TEXT_SEARCH_CONFIG',
    'STORE_VECTOR_STORAGE',
    'LOG_LEVEL',
    'LOG_PRETTY',
  ]);
  const log = createLogger({ level: env.LOG_LEVEL, pretty: env.LOG_PRETTY }).child({ process: 'migrate' });
  const db = openDb({ databaseUrl: env.DATABASE_URL, pgliteDataDir: env.PGLITE_DATA_DIR, poolMax: 2 }, log);
  try {
    // The schema's fixed choices come from the same variables the service reads: a schema made
    // here without them would be refused by every process started with them.
    const { applied } = await migrate(db, {
      schema: env.DATABASE_SCHEMA,
      dimensions: env.EMBEDDING_DIMENSIONS,
      textSearchConfig: env.STORE_TEXT_SEARCH_CONFIG,
      vectorStorage: env.STORE_VECTOR_STORAGE,
      log,
    });
    log.info({ applied, schema: env.DATABASE_SCHEMA }, applied.length ? 'migrations applied' : 'schema up to date');
  } finally {
    await db.close();
  }
} catch (err) {
  process.stderr.write(`engram migrate: ${coerceError(err).message}\n`);
  await exitAfterOutput(1);
}
