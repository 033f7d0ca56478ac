import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { TEST_REDIS_URL } from './helpers/harness.js';

/**
 * ioredis puts the failed command on a Redis error, arguments and all. A turn refused by a full
 * Redis (OOM) logged its text, its context and the append script's 5 KB of Lua in the API's
 * warning; a READONLY replica after a failover would do the same for every turn.
 */
describe("a Redis error's log line", () => {
  it("keeps the command's name and leaves its arguments out, for a cause too", async () => {
    const secret = '{"role":"user","content":"my bank pin is 8642"}';
    const { stdout } = await promisify(execFile)(
      process.execPath,
      ['--import', 'tsx', 'test/helpers/log-redis-error.ts', secret],
      { env: { PATH: process.env.PATH ?? '', REDIS_URL: TEST_REDIS_URL } },
    );
    expect(stdout).not.toContain('8642');
    const lines = stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { msg: string; err: Record<string, unknown> });
    const command = { name: 'eval', args: '3 arguments, left out of the log' };
    expect(lines.map((l) => l.msg)).toEqual([
      'refused',
      'refused, as a cause',
      'refused, in a transaction',
      'refused, in an aggregate',
    ]);
    expect(lines[0]?.err).toMatchObject({ message: expect.stringContaining('OOM command not allowed'), command });
    expect(lines[1]?.err).toMatchObject({ message: 'append failed', cause: expect.objectContaining({ command }) });
    const queued = { name: 'GET', args: '2 arguments, left out of the log' };
    expect(lines[2]?.err).toMatchObject({
      message: expect.stringContaining('EXECABORT'),
      previousErrors: [
        expect.objectContaining({ message: expect.stringContaining('wrong number of arguments'), command: queued }),
      ],
    });
    expect(lines[3]?.err).toMatchObject({
      aggregateErrors: [expect.objectContaining({ previousErrors: [expect.objectContaining({ command: queued })] })],
    });
  });
});
