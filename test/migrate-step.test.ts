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
});
