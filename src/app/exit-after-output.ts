/**
 * Exits with `code` once what the process wrote to stdout and stderr has been handed over. On
 * Linux a write to a pipe can be left queued in the process, and `process.exit()` right after it
 * drops it: `npm run jobs` printed nothing, at times, to a test that read its output through a
 * pipe (and 64 KB of 2 MB to `| wc -c`). A write's callback runs once the writes before it are
 * done, so an empty write on each stream is the mark.
 */
export async function exitAfterOutput(code: number): Promise<never> {
  await Promise.all(
    [process.stdout, process.stderr].map((stream) => new Promise<void>((resolve) => stream.write('', () => resolve()))),
  );
  process.exit(code);
}
