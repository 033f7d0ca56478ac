import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { cleanup, redisKeys, testEnv, testRedis } from './helpers/harness.js';

/** Keeps the README's first command true: the demo runs the whole service and shows memories. */
describe('npm run demo', () => {
  const env = testEnv('http://unused.invalid/v1');
  // A deployment's variables exported in the same shell: the demo must leave its data alone.
  const deployment = testEnv('http://unused.invalid/v1');
  afterAll(async () => {
    await cleanup(env);
    await cleanup(deployment);
  });
  const demo = async () => {
    const { stdout } = await promisify(execFile)(
      process.execPath,
      ['--import', 'tsx', 'scripts/demo.ts', '--once', '--schema', env.DATABASE_SCHEMA, '--prefix', env.ENGRAM_PREFIX],
      {
        env: {
          PATH: process.env.PATH ?? '',
          DATABASE_URL: env.DATABASE_URL,
          REDIS_URL: env.REDIS_URL,
          PORT: '0',
          DATABASE_SCHEMA: deployment.DATABASE_SCHEMA,
          ENGRAM_PREFIX: deployment.ENGRAM_PREFIX,
          DEBOUNCE_MS: '30000',
          EMBEDDING_DIMENSIONS: '1536',
          API_KEYS: 'secret-key',
        },
        timeout: 60_000,
      },
    );
    return stdout;
  };

  it('replays the conversations and prints the updated memory, the same story every run', async () => {
    for (const run of [1, 2]) {
      const stdout = await demo();
      const searches = stdout.split('$ curl').filter((s) => s.includes('/v1/memories/search'));
      expect(searches, `run ${run}`).toHaveLength(3);
      const [first, now, before] = searches as [string, string, string];
      expect(first).toContain('- User likes pasta');
      expect(first).not.toContain('miso');
      // After the second conversation: what holds now, and what held before it.
      expect(now).toContain('- User loves ramen, especially miso ramen  (valid from');
      expect(now).not.toContain('pasta');
      expect(before).toMatch(/- User likes pasta {2}\(valid from \d\d:\d\d:\d\d until \d\d:\d\d:\d\d,/);
      expect(before).not.toContain('miso');
      expect(stdout).toContain('Model calls: 2');
    }
    // The exported deployment's schema and prefix were never touched.
    const pool = new pg.Pool({ connectionString: env.DATABASE_URL, max: 1 });
    try {
      const { rows } = await pool.query<{ ns: string | null }>('select to_regnamespace($1)::text as ns', [
        deployment.DATABASE_SCHEMA,
      ]);
      expect(rows[0]?.ns).toBeNull();
    } finally {
      await pool.end();
    }
    const redis = testRedis();
    try {
      expect(await redisKeys(redis, deployment.ENGRAM_PREFIX)).toEqual([]);
    } finally {
      redis.disconnect();
    }
  });
});
