import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deleteKeys, TEST_REDIS_URL, uniqueName } from './helpers/harness.js';
import { jobs } from './helpers/jobs-cli.js';
import { StallProxy } from './helpers/stall-proxy.js';

/** The operators' CLI fails within seconds, and says why, when Redis is not there to answer. */
describe('npm run jobs without a Redis that answers', () => {
  const proxy = new StallProxy();
  let url: string;
  beforeAll(async () => {
    url = await proxy.start();
  });
  const prefix = `engram-test-${uniqueName('jobs')}`;
  afterAll(async () => {
    await proxy.stop();
    await deleteKeys(TEST_REDIS_URL, prefix); // the queues' meta keys the commands left
  });

  it('counts the jobs of a Redis that answers', async () => {
    const run = await jobs(['counts'], { REDIS_URL: TEST_REDIS_URL, ENGRAM_PREFIX: prefix });
    expect(run.code).toBe(0);
    const lines = run.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.map((l) => l.queue)).toEqual(['reflection', 'consolidation', undefined]);
    expect(lines[2]).toEqual({ pendingThreads: 0, parkedThreads: 0 });
  });

  it('a reader that closes its end early (`| head -1`) ends the command quietly with 0', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'workers/jobs.ts', 'counts'], {
      env: { PATH: process.env.PATH ?? '', REDIS_URL: TEST_REDIS_URL, ENGRAM_PREFIX: prefix },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout.destroy(); // closed before the first line: every write meets EPIPE
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const [code] = (await once(child, 'exit')) as [number | null];
    expect([code, stderr]).toEqual([0, '']);
  });

  it('a retry without a job says so alone, before connecting', async () => {
    const run = await jobs(['retry'], { REDIS_URL: TEST_REDIS_URL, ENGRAM_PREFIX: prefix });
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(
      /^engram jobs: retry takes one of --job <id>, --all or --thread <id>\nusage: npm run jobs/,
    );
    // Not followed by the queues' warnings about a connection closed under them.
    expect(run.stderr).not.toMatch(/connection|Stream isn't writeable/);
  });

  it('a refused connection: exit 1 naming REDIS_URL', async () => {
    const run = await jobs(['counts'], { REDIS_URL: 'redis://127.0.0.1:1', ENGRAM_PREFIX: prefix });
    expect([run.code, run.stderr]).toEqual([
      1,
      expect.stringMatching(/^engram jobs: cannot reach Redis at REDIS_URL: .*ECONNREFUSED/),
    ]);
  });

  it('a stalled Redis: exit 1 saying it did not answer', async () => {
    proxy.stall();
    try {
      const run = await jobs(['counts'], { REDIS_URL: url, ENGRAM_PREFIX: prefix });
      expect([run.code, run.stderr]).toEqual([
        1,
        expect.stringMatching(/^engram jobs: .*Redis did not answer within 5 s/),
      ]);
    } finally {
      proxy.resume();
    }
  });
});
