import { execFile, spawn } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
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

  /** Starts `command` without REDIS_URL on `port`; resolves once it is ready. */
  async function startAllInOne(command: string[], port: number, dir: string) {
    const child = spawn(command[0]!, command.slice(1), {
      env: {
        PATH: process.env.PATH ?? '',
        ...withoutRedis,
        PORT: String(port),
        ENGRAM_DATA_DIR: dir,
        LOG_LEVEL: 'info',
      },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let logs = '';
    child.stdout.on('data', (chunk: Buffer) => (logs += chunk.toString()));
    const exited = new Promise<number | null>((r) => child.on('exit', r));
    await waitFor(
      () =>
        fetch(`http://127.0.0.1:${port}/readyz`).then(
          (r) => r.ok,
          () => false,
        ),
      { timeoutMs: 30_000 },
    );
    const redisPid = Number(await readFile(join(dir, 'redis', 'engram-redis.pid'), 'utf8'));
    return { child, exited, logs: () => logs, redisPid };
  }
  const alive = (pid: number) =>
    readFile(`/proc/${pid}/cmdline`, 'utf8').then(
      (c) => c.length > 0,
      () => false,
    );

  it('the embedded redis-server dying stops the all-in-one process with exit code 1, saying why', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'engram-data-'));
    try {
      const p = await startAllInOne([process.execPath, '--import', 'tsx', 'workers/all-in-one.ts'], 3462, dir);
      process.kill(p.redisPid, 'SIGKILL');
      expect(await p.exited).toBe(1);
      expect(p.logs()).toMatch(/"signal":"SIGKILL"[^\n]*the embedded redis-server exited: stopping engram/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('npm start signalled through npm (as a supervisor does) takes engram and its redis-server down', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'engram-data-'));
    try {
      const p = await startAllInOne(['npm', 'start', '--silent'], 3463, dir);
      const server = /"pid":(\d+)[^\n]*engram started/.exec(p.logs())?.[1];
      expect(server).toBeDefined();
      p.child.kill('SIGTERM'); // npm's own pid, not engram's
      await p.exited;
      await waitFor(async () => !(await alive(Number(server))) && !(await alive(p.redisPid)), { timeoutMs: 30_000 });
      await expect(fetch('http://127.0.0.1:3463/healthz')).rejects.toThrow();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
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
