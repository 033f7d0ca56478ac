import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

/** `npm run jobs -- <args>` as an operator runs it (node directly, as the npm script does). */
export function jobs(args: string[], env: Record<string, string>) {
  return promisify(execFile)(process.execPath, ['--import', 'tsx', 'workers/jobs.ts', ...args], {
    env: { PATH: process.env.PATH ?? '', ...env },
  }).then(
    ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
    (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, stdout: e.stdout, stderr: e.stderr }),
  );
}
