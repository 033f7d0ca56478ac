import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { parseEnv } from '../src/config/env.js';
import { deleteKeys, TEST_REDIS_URL, uniqueName } from './helpers/harness.js';

const minimal = {
  REDIS_URL: 'redis://127.0.0.1:6379',
  DATABASE_URL: 'postgres://postgres@127.0.0.1:5432/test',
  OPENAI_API_KEY: 'k',
};

describe('environment', () => {
  it('applies documented defaults to a minimal environment', () => {
    const env = parseEnv(minimal);
    expect(env).toMatchObject({
      DEBOUNCE_MS: 30_000,
      MAX_WAIT_MS: 300_000,
      DATABASE_SCHEMA: 'engram',
      ENGRAM_PREFIX: 'engram',
      EMBEDDING_DIMENSIONS: 1536,
    });
  });

  it('names every bad variable in one message', () => {
    let message = '';
    try {
      parseEnv({
        REDIS_URL: 'http://nope',
        DEBOUNCE_MS: 'soon',
        EMBEDDING_DIMENSIONS: '-3',
        LOG_PRETTY: 'maybe',
        CONSOLIDATION_CRON: 'every five minutes',
      });
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toMatch(/^Invalid environment \(\d+ problems\)/);
    for (const name of ['REDIS_URL', 'OPENAI_API_KEY', 'DEBOUNCE_MS', 'EMBEDDING_DIMENSIONS', 'LOG_PRETTY']) {
      expect(message).toContain(`  ${name}: `);
    }
    expect(message).toContain('OPENAI_API_KEY: is required but not set');
    // node-cron's own check, as the scheduler's: every process refuses it, not the scheduler alone.
    expect(message).toContain('  CONSOLIDATION_CRON: is not a valid cron expression');
    expect(parseEnv({ ...minimal, CONSOLIDATION_CRON: '0 */10 * * * *' }).CONSOLIDATION_CRON).toBe('0 */10 * * * *');
  });

  it('without DATABASE_URL, the store is the embedded PGlite in PGLITE_DATA_DIR; store settings have defaults', () => {
    const { DATABASE_URL: _unset, ...noDb } = minimal;
    expect(parseEnv(noDb)).toMatchObject({
      PGLITE_DATA_DIR: '.engram/pgdata',
      STORE_INDEX_FIELDS: ['$'],
      STORE_EXACT_SEARCH_MAX: 10_000,
    });
    expect(parseEnv(noDb).DATABASE_URL).toBeUndefined();
    expect(parseEnv({ ...minimal, STORE_INDEX_FIELDS: 'title, sections[*].text' }).STORE_INDEX_FIELDS).toEqual([
      'title',
      'sections[*].text',
    ]);
    expect(() => parseEnv({ ...minimal, STORE_INDEX_FIELDS: 'a..b' })).toThrow(/STORE_INDEX_FIELDS/);
    expect(() => parseEnv({ ...minimal, DATABASE_URL: 'mysql://x' })).toThrow(/DATABASE_URL/);
    expect(parseEnv(minimal).STORE_REFRESH_TTL_ON_READ).toBe(true);
    expect(parseEnv({ ...minimal, STORE_REFRESH_TTL_ON_READ: 'false' }).STORE_REFRESH_TTL_ON_READ).toBe(false);
    expect(parseEnv({ ...minimal, STORE_REFRESH_TTL_ON_READ: '0' }).STORE_REFRESH_TTL_ON_READ).toBe(false);
    expect(() => parseEnv({ ...minimal, STORE_REFRESH_TTL_ON_READ: 'sometimes' })).toThrow(/STORE_REFRESH_TTL_ON_READ/);
  });

  it('refuses an API_KEYS entry that is not tenant:key, and names it by position, never by its secret', () => {
    const secret = 'sk-live-0123456789abcdef';
    const good = `ops:${'k'.repeat(16)}`;
    const messageOf = (entry: string) => {
      try {
        parseEnv({ ...minimal, ADMIN_PASSWORD: 'board-password', API_KEYS: `${good},${entry}` });
        return '';
      } catch (err) {
        return (err as Error).message;
      }
    };
    for (const [entry, problem] of [
      // No ":" made a near-copy of the secret the tenant (then shown in namespaces and history).
      [secret, 'has no ":"'],
      [`:${secret}`, 'has no tenant before ":"'],
      ['acme:', 'has no key after ":"'],
      [`Acme Corp:${secret}`, 'has a tenant other than * that is not a tenant name'],
      ['acme:0123456789', 'has a key shorter than 16 characters'],
    ]) {
      const message = messageOf(entry as string);
      expect(message).toContain(`API_KEYS: entry 2 ${problem}`);
      expect(message).not.toContain('0123456789');
    }
    expect(
      parseEnv({ ...minimal, ADMIN_PASSWORD: 'board-password', API_KEYS: `${good}, *:${secret}` }).API_KEYS,
    ).toEqual([
      { tenant: 'ops', key: 'k'.repeat(16) },
      { tenant: '*', key: secret },
    ]);
  });

  it("refuses a key given to two tenants, which made one tenant's application act as the other", () => {
    const key = 'shared-key-0123456789';
    const keysOf = (API_KEYS: string) => parseEnv({ ...minimal, ADMIN_PASSWORD: 'board-password', API_KEYS });
    for (const keys of [`acme:${key},globex:${key}`, `acme:${key},*:${key}`, `acme:${key},acme:${key},globex:${key}`]) {
      let message = '';
      try {
        keysOf(keys);
      } catch (err) {
        message = (err as Error).message;
      }
      expect(message, keys).toMatch(/API_KEYS: entry \d has the key of entry 1, another tenant's/);
      expect(message).not.toContain(key);
    }
    // The same entry twice names one tenant: nothing is ambiguous.
    expect(keysOf(`acme:${key},acme:${key}`).API_KEYS).toHaveLength(2);
  });

  it('rejects a maxWait shorter than the debounce window', () => {
    expect(() => parseEnv({ ...minimal, DEBOUNCE_MS: '5000', MAX_WAIT_MS: '1000' })).toThrow(
      /MAX_WAIT_MS: must be at least DEBOUNCE_MS/,
    );
  });

  it('a process started with a bad environment exits non-zero and says what is wrong', async () => {
    const run = promisify(execFile);
    const err = await run(process.execPath, ['--import', 'tsx', 'workers/api.ts'], {
      env: { PATH: process.env.PATH ?? '', REDIS_URL: 'redis://127.0.0.1:6379', PORT: 'eighty' },
    }).then(
      () => null,
      (e: { code: number; stderr: string }) => e,
    );
    expect(err?.code).toBe(1);
    expect(err?.stderr).toContain('engram api: Invalid environment');
    expect(err?.stderr).toContain('OPENAI_API_KEY: is required but not set');
    expect(err?.stderr).toContain('PORT: ');
  });

  it('a process that cannot reach Postgres at start exits non-zero, naming Postgres and DATABASE_URL', async () => {
    const run = promisify(execFile);
    const prefix = `engram-test-${uniqueName('pgdown')}`;
    const err = await run(process.execPath, ['--import', 'tsx', 'workers/reflection.ts'], {
      env: {
        PATH: process.env.PATH ?? '',
        REDIS_URL: TEST_REDIS_URL,
        ENGRAM_PREFIX: prefix,
        DATABASE_URL: 'postgres://postgres@127.0.0.1:1/test',
        OPENAI_API_KEY: 'test-key',
      },
      timeout: 20_000,
    }).then(
      () => null,
      (e: { code: number; stdout: string }) => e,
    );
    await deleteKeys(TEST_REDIS_URL, prefix);
    expect(err?.code).toBe(1);
    const fatal = err?.stdout
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line) as { level: number; msg: string })
      .find((line) => line.level === 60);
    expect(fatal?.msg).toMatch(/Postgres is not reachable at DATABASE_URL \(connect ECONNREFUSED 127\.0\.0\.1:1\)/);
  }, 30_000);
});
