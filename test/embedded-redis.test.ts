import { execFile, spawn } from 'node:child_process';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { parseEnv } from '../src/config/env.js';
import { cleanup, testEnvVars, waitFor } from './helpers/harness.js';

describe('no REDIS_URL', () => {
  const vars = testEnvVars('http://127.0.0.1:9/v1');
  const { REDIS_URL: _unset, ...withoutRedis } = vars;
  let dataDir = '';
  afterAll(async () => {
    await cleanup(parseEnv(vars));
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  it('the all-in-one process runs its own redis-server with AOF in the data folder, and stops it', async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'engram-data-'));
    const child = spawn(process.execPath, ['--import', 'tsx', 'workers/all-in-one.ts'], {
      env: { PATH: process.env.PATH ?? '', ...withoutRedis, PORT: '3461', ENGRAM_DATA_DIR: dataDir, LOG_LEVEL: 'info' },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let logs = '';
    child.stdout.on('data', (chunk: Buffer) => (logs += chunk.toString()));
    const exited = new Promise<number | null>((r) => child.on('exit', r));
    await waitFor(
      () =>
        fetch('http://127.0.0.1:3461/readyz').then(
          (r) => r.ok,
          () => false,
        ),
      { timeoutMs: 30_000 },
    );
    const res = await fetch('http://127.0.0.1:3461/v1/threads/t1/turns', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ context: { userId: 'u1' }, messages: [{ role: 'user', content: 'I keep bees' }] }),
    });
    expect(res.status).toBe(202);
    expect(await readdir(join(dataDir, 'redis'))).toContain('appendonlydir');
    const redisUrl = /"url":"(redis:\/\/127\.0\.0\.1:\d+)"[^\n]*embedded redis-server started/.exec(logs)?.[1];
    expect(redisUrl).toBeDefined();
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    await expect(fetch('http://127.0.0.1:3461/healthz')).rejects.toThrow();
    // The child redis-server is gone with its parent.
    const probe = new Redis(redisUrl!, { lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 });
    probe.on('error', () => undefined);
    await expect(probe.connect()).rejects.toThrow();
    probe.disconnect();
  });

  it('a split process refuses to start and says why', async () => {
    const err = await promisify(execFile)(process.execPath, ['--import', 'tsx', 'workers/reflection.ts'], {
      env: { PATH: process.env.PATH ?? '', ...withoutRedis },
    }).then(
      () => null,
      (e: { code: number; stderr: string }) => e,
    );
    expect(err?.code).toBe(1);
    expect(err?.stderr).toContain('REDIS_URL is required (only the all-in-one process starts its own Redis)');
  });
});
