import { execFile } from 'node:child_process';
import { describe, expect, it } from 'vitest';

/**
 * The command-line tools (`npm run jobs`, migrate, ann-index) exit once their output is written:
 * on Linux a pipe's writes can be left queued, and `process.exit()` right after them dropped
 * what `npm run jobs` printed (a flaky CI test), or all but 64 KB of a long output.
 */
describe('exiting after output', () => {
  it('hands every byte written to a pipe to its reader, with the exit code asked', async () => {
    const { code, length } = await new Promise<{ code: number | null; length: number }>((resolve) => {
      const child = execFile(
        process.execPath,
        ['--import', 'tsx', 'test/helpers/write-then-exit.ts', '3'],
        { maxBuffer: 10_000_000 },
        (_err, stdout) => resolve({ code: child.exitCode, length: stdout.length }),
      );
    });
    expect({ code, length }).toEqual({ code: 3, length: 2_000_001 });
  });
});
