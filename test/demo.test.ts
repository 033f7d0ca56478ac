import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { cleanup, testEnv } from './helpers/harness.js';

/** Keeps the README's first command true: the demo runs the whole service and shows memories. */
describe('npm run demo', () => {
  const env = testEnv('http://unused.invalid/v1');
  afterAll(async () => cleanup(env));

  it('replays the conversations and prints the updated memory', async () => {
    const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', 'scripts/demo.ts', '--once'], {
      env: {
        PATH: process.env.PATH ?? '',
        DATABASE_URL: env.DATABASE_URL,
        REDIS_URL: env.REDIS_URL,
        DATABASE_SCHEMA: env.DATABASE_SCHEMA,
        ENGRAM_PREFIX: env.ENGRAM_PREFIX,
        PORT: '0',
        DEBOUNCE_MS: '200',
      },
      timeout: 60_000,
    });
    const searches = stdout.split('$ curl').filter((s) => s.includes('/v1/memories/search'));
    expect(searches).toHaveLength(3);
    const [first, now, before] = searches as [string, string, string];
    expect(first).toContain('- User likes pasta');
    // After the second conversation: what holds now, and what held before it.
    expect(now).toContain('- User loves ramen, especially miso ramen  (valid from');
    expect(now).not.toContain('pasta');
    expect(before).toMatch(/- User likes pasta {2}\(valid from \d\d:\d\d:\d\d until \d\d:\d\d:\d\d,/);
    expect(before).not.toContain('miso');
    expect(stdout).toContain('Model calls: 2');
  });
});
