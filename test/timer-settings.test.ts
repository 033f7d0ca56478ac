import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { parseEnv } from '../src/config/env.js';
import { cleanup, testEnv, testEnvVars } from './helpers/harness.js';

const minimal = { REDIS_URL: 'redis://127.0.0.1:6379', OPENAI_API_KEY: 'k' };
/** Past setTimeout's longest delay (2^31-1 ms), which Node fires after 1 ms instead. */
const PAST_TIMERS = '3000000000';
const TIMERS = ['SHUTDOWN_GRACE_MS', 'LLM_TIMEOUT_MS', 'EMBEDDING_TIMEOUT_MS', 'WORKER_LOCK_MS'];

describe('durations that become timers', () => {
  it('are refused past an hour, each named, and taken up to it', () => {
    for (const name of TIMERS) {
      expect(() => parseEnv({ ...minimal, [name]: PAST_TIMERS }), name).toThrow(
        new RegExp(`  ${name}: at most 3600000 \\(an hour\\)`),
      );
      expect(parseEnv({ ...minimal, [name]: '3600000' })[name as 'LLM_TIMEOUT_MS']).toBe(3_600_000);
    }
  });

  // It started, and on SIGTERM exited 1 at once ("shutdown grace period over"), its active
  // reflections left stalled for another worker to take over a lock's life later.
  it('a process given a grace past the timers refuses to start, naming the variable', async () => {
    const vars = testEnvVars('http://127.0.0.1:1/v1');
    const err = await promisify(execFile)(process.execPath, ['--import', 'tsx', 'workers/all-in-one.ts'], {
      env: { PATH: process.env.PATH ?? '', ...vars, SHUTDOWN_GRACE_MS: PAST_TIMERS },
      timeout: 20_000,
    }).then(
      () => null,
      (e: { code: number | null; stderr: string }) => e,
    );
    await cleanup(testEnv('http://127.0.0.1:1/v1', vars));
    expect([err?.code, err?.stderr]).toEqual([1, expect.stringContaining('SHUTDOWN_GRACE_MS: at most 3600000')]);
  }, 30_000);

  it('a process given the longest grace drains and exits 0 on SIGTERM', async () => {
    const vars = testEnvVars('http://127.0.0.1:1/v1', { SHUTDOWN_GRACE_MS: '3600000', LOG_LEVEL: 'info' });
    const child = spawn(process.execPath, ['--import', 'tsx', 'workers/all-in-one.ts'], {
      env: { PATH: process.env.PATH ?? '', ...vars },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const lines: string[] = [];
    const exited = once(child, 'exit') as Promise<[number | null]>;
    const started = new Promise<void>((resolve) =>
      createInterface({ input: child.stdout }).on('line', (line) => {
        lines.push(line);
        if (line.includes('"engram started"')) resolve();
      }),
    );
    try {
      await Promise.race([started, exited]);
      child.kill('SIGTERM');
      const [code] = await exited;
      expect([code, stderr]).toEqual([0, '']);
      expect(lines.join('\n')).not.toContain('grace period over');
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
      await cleanup(testEnv('http://127.0.0.1:1/v1', vars));
    }
  }, 30_000);
});
