/** Writes 2 MB to stdout, then exits with the code given (test/exit-after-output.test.ts). */
import { exitAfterOutput } from '../../src/app/exit-after-output.js';

process.stdout.write(`${'x'.repeat(2_000_000)}\n`);
await exitAfterOutput(Number(process.argv[2] ?? 0));
