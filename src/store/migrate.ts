import { PermanentError } from '../errors.js';
import type { Logger } from '../observability/logger.js';
import { migrations as allMigrations, type Migration } from './migrations/index.js';
import type { Db } from './db.js';
import { tables } from './sql.js';

/**
 * Applies pending migrations, each in its own transaction under an advisory lock, so that any
 * number of processes may start at once. Run as its own step (`npm run migrate`, the compose
 * one-shot, or the all-in-one start), never lazily inside a request.
 */
export async function migrate(
  db: Db,
  opts: {
    schema: string;
    dimensions: number;
    textSearchConfig?: string;
    vectorStorage?: 'float' | 'half';
    log: Logger;
    migrations?: Migration[];
  },
): Promise<{ applied: number[] }> {
  const t = tables(opts.schema);
  const textSearchConfig = opts.textSearchConfig ?? 'english';
  // It is written into SQL text (a generated column's expression cannot take a parameter).
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(textSearchConfig))
    throw new PermanentError(
      `text-search configuration ${JSON.stringify(textSearchConfig)} is not a configuration name`,
    );
  const lockKey = `engram.migrate.${opts.schema}`;
  const applied: number[] = [];
  for (const migration of opts.migrations ?? allMigrations) {
    await db.transaction(async (tx) => {
      await tx.query('select pg_advisory_xact_lock(hashtextextended($1, 0))', [lockKey]);
      await tx.exec(`create schema if not exists ${t.schema}`);
      await tx.exec(
        `create table if not exists ${t.migrations} (id int primary key, name text not null, applied_at timestamptz not null default now())`,
      );
      const done = await tx.query('select 1 from ' + t.migrations + ' where id = $1', [migration.id]);
      if (done.rowCount) return;
      await tx.exec(
        migration.sql(t, {
          dimensions: opts.dimensions,
          textSearchConfig,
          vectorStorage: opts.vectorStorage ?? 'float',
        }),
      );
      await tx.query(`insert into ${t.migrations} (id, name) values ($1, $2)`, [migration.id, migration.name]);
      applied.push(migration.id);
      opts.log.info(
        { migration: migration.id, migrationName: migration.name, schema: opts.schema },
        'migration applied',
      );
    });
  }
  await checkDimensions(db, opts.schema, opts.dimensions, textSearchConfig, opts.vectorStorage ?? 'float');
  return { applied };
}

/**
 * New code on a schema its migrations have not reached yet (an upgrade deployed before
 * `npm run migrate`) started, answered ready, and failed its queries one by one (`column m.valid_from
 * does not exist`, a 500). Refuse at start instead, naming what is missing and what to run. A
 * schema ahead of the code is accepted: migrating before restarting onto a new version leaves the
 * running processes of the version before on a newer schema (docs/operations.md, "Upgrading").
 */
export async function checkMigrated(db: Db, schema: string, known: Migration[] = allMigrations): Promise<void> {
  const t = tables(schema);
  const res = await db.query<{ id: number }>(`select id from ${t.migrations}`).catch((err: { code?: string }) => {
    if (err.code === '42P01' || err.code === '3F000') {
      throw new PermanentError(`schema "${schema}" has no engram tables yet: run \`npm run migrate\` first`, {
        cause: err,
      });
    }
    throw err;
  });
  const applied = new Set(res.rows.map((r) => Number(r.id)));
  const missing = known.filter((m) => !applied.has(m.id));
  if (missing.length)
    throw new PermanentError(
      `schema "${schema}" lacks ${missing.length === 1 ? 'migration' : 'migrations'} ` +
        `${missing.map((m) => `${m.id} (${m.name})`).join(', ')}, which this version of engram needs: ` +
        'run `npm run migrate` with this version, then start it',
    );
}

/** The embedding size the store in `schema` was made for (its first migration records it). */
export async function storeDimensions(db: Db, schema: string): Promise<number | undefined> {
  const res = await db.query<{ value: number }>(
    `select value from ${tables(schema).settings} where key = 'embedding_dimensions'`,
  );
  return res.rows[0]?.value;
}

/**
 * A store made for one embedding size cannot take another, nor (its generated text-search
 * column fixed) another text-search configuration: say so instead of failing per write or
 * silently parsing queries unlike the stored texts.
 */
export async function checkDimensions(
  db: Db,
  schema: string,
  dimensions: number,
  textSearchConfig?: string,
  vectorStorage?: 'float' | 'half',
): Promise<void> {
  const t = tables(schema);
  const stored = await storeDimensions(db, schema).catch((err: { code?: string }) => {
    if (err.code === '42P01' || err.code === '3F000') {
      throw new PermanentError(`schema "${schema}" has no engram tables yet: run \`npm run migrate\` first`, {
        cause: err,
      });
    }
    throw err;
  });
  if (stored !== dimensions) {
    throw new PermanentError(
      `EMBEDDING_DIMENSIONS is ${dimensions} but schema "${schema}" was created for ${stored} dimensions; ` +
        'use the matching embedding model or a new DATABASE_SCHEMA',
    );
  }
  const chosen = await db.query<{ key: string; value: string }>(
    `select key, value #>> '{}' as value from ${t.settings} where key in ('text_search_config', 'vector_storage')`,
  );
  const made = new Map(chosen.rows.map((r) => [r.key, r.value]));
  for (const [key, variable, wanted] of [
    ['text_search_config', 'STORE_TEXT_SEARCH_CONFIG', textSearchConfig],
    ['vector_storage', 'STORE_VECTOR_STORAGE', vectorStorage],
  ] as const) {
    const was = made.get(key);
    if (wanted !== undefined && was !== undefined && was !== wanted)
      throw new PermanentError(
        `${variable} is ${wanted} but schema "${schema}" was made with ${was}; set it back, or use a new DATABASE_SCHEMA`,
      );
  }
}
