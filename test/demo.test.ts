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
    expect(stdout).toContain('- User likes pasta');
    expect(stdout).toContain('- User loves ramen, especially miso ramen  (version 2');
    expect(stdout).toContain('Model calls: 2');
  });
});
