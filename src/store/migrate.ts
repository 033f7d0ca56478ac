import type pg from 'pg';
import { PermanentError } from '../errors.js';
import type { Logger } from '../log/logger.js';
import { migrations as allMigrations, type Migration } from './migrations/index.js';
import { tables } from './sql.js';
import { withTransaction } from './pool.js';

/**
 * Applies pending migrations, each in its own transaction under an advisory lock, so that any
 * number of processes may start at once. Run as its own step (`npm run migrate`, the compose
 * one-shot, or the all-in-one start), never lazily inside a request.
 */
export async function migrate(
  pool: pg.Pool,
  opts: { schema: string; dimensions: number; log: Logger; migrations?: Migration[] },
): Promise<{ applied: number[] }> {
  const t = tables(opts.schema);
  const lockKey = `engram.migrate.${opts.schema}`;
  const applied: number[] = [];
  for (const migration of opts.migrations ?? allMigrations) {
    await withTransaction(pool, async (client) => {
      await client.query('select pg_advisory_xact_lock(hashtextextended($1, 0))', [lockKey]);
      await client.query(`create schema if not exists ${t.schema}`);
      await client.query(
        `create table if not exists ${t.migrations} (id int primary key, name text not null, applied_at timestamptz not null default now())`,
      );
      const done = await client.query('select 1 from ' + t.migrations + ' where id = $1', [migration.id]);
      if (done.rowCount) return;
      await client.query(migration.sql(t, opts.dimensions));
      await client.query(`insert into ${t.migrations} (id, name) values ($1, $2)`, [migration.id, migration.name]);
      applied.push(migration.id);
      opts.log.info({ migration: migration.id, migrationName: migration.name, schema: opts.schema }, 'migration applied');
    });
  }
  await checkDimensions(pool, opts.schema, opts.dimensions);
  return { applied };
}

/** A store made for one embedding size cannot take another: say so instead of failing per write. */
export async function checkDimensions(pool: pg.Pool, schema: string, dimensions: number): Promise<void> {
  const t = tables(schema);
  const res = await pool.query(`select value from ${t.settings} where key = 'embedding_dimensions'`).catch((err: { code?: string }) => {
    if (err.code === '42P01' || err.code === '3F000') {
      throw new PermanentError(`schema "${schema}" has no engram tables yet: run \`npm run migrate\` first`, { cause: err });
    }
    throw err;
  });
  const stored = res.rows[0]?.value as number | undefined;
  if (stored !== dimensions) {
    throw new PermanentError(
      `EMBEDDING_DIMENSIONS is ${dimensions} but schema "${schema}" was created for ${stored} dimensions; ` +
        'use the matching embedding model or a new DATABASE_SCHEMA',
    );
  }
}
