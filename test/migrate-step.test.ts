import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { parseEnv } from '../src/config/env.js';
import { createLogger } from '../src/observability/logger.js';
import { migrate } from '../src/store/migrate.js';
import { migrations } from '../src/store/migrations/index.js';
import { openDb } from '../src/store/open.js';
import { tables } from '../src/store/sql.js';
import { cleanup, TEST_DATABASE_URL, testEnvVars } from './helpers/harness.js';

/** The operator's migrate step: `npm run migrate` makes the schema the service expects, and a process refuses one it has not reached. */
const run = promisify(execFile);
const silent = createLogger({ level: 'silent' });
const made: Record<string, string>[] = [];

afterEach(async () => {
  for (const vars of made.splice(0)) await cleanup(parseEnv(vars));
});

function vars(overrides: Record<string, string> = {}) {
  const v = testEnvVars('http://127.0.0.1:9/v1', { LOG_LEVEL: 'info', ...overrides });
  made.push(v);
  return v;
}

/** Runs a worker entry to its exit: its code and what it wrote, read through pipes as a supervisor would. */
async function runWorker(entry: string, env: Record<string, string>) {
  return run(process.execPath, ['--import', 'tsx', `workers/${entry}.ts`], {
    env: { PATH: process.env.PATH ?? '', ...env },
    timeout: 30_000,
  }).then(
    ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
    (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, stdout: e.stdout, stderr: e.stderr }),
  );
}

describe('the migrate step', () => {
  it('npm run migrate makes the schema with STORE_VECTOR_STORAGE and STORE_TEXT_SEARCH_CONFIG', async () => {
    const env = vars({ STORE_VECTOR_STORAGE: 'half', STORE_TEXT_SEARCH_CONFIG: 'simple' });
    const migrated = await runWorker('migrate', env);
    expect(migrated.code, migrated.stderr).toBe(0);
    const db = openDb({ databaseUrl: TEST_DATABASE_URL, pgliteDataDir: '', poolMax: 1 }, silent);
    try {
      const chosen = await db.query<{ key: string; value: string }>(
        `select key, value #>> '{}' as value from ${tables(env.DATABASE_SCHEMA!).settings} where key in ('text_search_config', 'vector_storage') order by key`,
      );
      expect(chosen.rows).toEqual([
        { key: 'text_search_config', value: 'simple' },
        { key: 'vector_storage', value: 'half' },
      ]);
    } finally {
      await db.close();
    }
  }, 40_000);

  it('a process on a schema its migrations have not reached exits 1, naming them and the command', async () => {
    const env = vars();
    const db = openDb({ databaseUrl: TEST_DATABASE_URL, pgliteDataDir: '', poolMax: 1 }, silent);
    try {
      // An upgrade deployed before its migrate step: the schema stops at migration 6.
      await migrate(db, {
        schema: env.DATABASE_SCHEMA!,
        dimensions: 64,
        log: silent,
        migrations: migrations.slice(0, 6),
      });
    } finally {
      await db.close();
    }
    const started = await runWorker('api', env);
    expect(started.code).toBe(1);
    const fatal = started.stdout
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line) as { level: number; msg: string })
      .find((line) => line.level === 60);
    expect(fatal?.msg).toMatch(/lacks migrations 7 \(validity-and-erase\), .*10 \(inline-vectors\)/);
    expect(fatal?.msg).toContain('run `npm run migrate` with this version');
  }, 40_000);

  it('dates the invalidations history held before migration 12 by their memory, else by their row', async () => {
    const env = vars();
    const schema = env.DATABASE_SCHEMA!;
    const t = tables(schema);
    const db = openDb({ databaseUrl: TEST_DATABASE_URL, pgliteDataDir: '', poolMax: 1 }, silent);
    const at = (iso: string) => new Date(iso);
    try {
      await migrate(db, { schema, dimensions: 64, log: silent, migrations: migrations.slice(0, 11) });
      // 'still': invalidated at its version 2 and left so; 'moved': invalidated, then put again.
      await db.exec(`
        insert into ${t.memories} (namespace, key, kind, value, version, valid_from, invalid_at)
        values ('{m,u}', 'still', 'memory', '{}', 2, '2026-01-01Z', '2026-03-01Z'),
               ('{m,u}', 'moved', 'memory', '{}', 3, '2026-01-02Z', null);
        insert into ${t.history} (namespace, key, kind, op, version, before, after, actor, created_at)
        values ('{m,u}', 'still', 'memory', 'insert', 1, null, '{}', 'a', '2026-01-01Z'),
               ('{m,u}', 'still', 'memory', 'invalidate', 2, '{}', '{}', 'a', '2026-04-01Z'),
               ('{m,u}', 'moved', 'memory', 'invalidate', 2, '{}', '{}', 'a', '2026-04-02Z'),
               ('{m,u}', 'moved', 'memory', 'update', 3, '{}', '{}', 'a', '2026-04-03Z');`);
      await migrate(db, { schema, dimensions: 64, log: silent });
      const rows = await db.query<{ key: string; op: string; valid_from: Date | null; invalid_at: Date | null }>(
        `select key, op, valid_from, invalid_at from ${t.history} order by id`,
      );
      expect(rows.rows).toEqual([
        { key: 'still', op: 'insert', valid_from: null, invalid_at: null },
        { key: 'still', op: 'invalidate', valid_from: at('2026-01-01Z'), invalid_at: at('2026-03-01Z') },
        { key: 'moved', op: 'invalidate', valid_from: null, invalid_at: at('2026-04-02Z') },
        { key: 'moved', op: 'update', valid_from: null, invalid_at: null },
      ]);
    } finally {
      await db.close();
    }
  });
});
