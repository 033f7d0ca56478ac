/**
 * A reflection worker in its own process, for tests that SIGKILL or SIGTERM workers.
 * Configured by the environment (as in production). FAILPOINT makes the process announce a step
 * on stdout and hang there, so the parent can kill it at a precise point:
 *   hang-before-commit  right before the commit transaction
 *   hang-after-commit   right after it commits (before the buffer trim and job completion)
 * Prints "ready" once the worker runs. Test code only: the product has no failpoints.
 */
import { Runtime } from '../../src/app/runtime.js';
import { parseEnv } from '../../src/config/env.js';
import { createLogger } from '../../src/observability/logger.js';

const env = parseEnv(process.env);
const runtime = new Runtime(env, createLogger({ level: env.LOG_LEVEL }), { ceilingIntervalMs: 200 });
const say = (line: string) => process.stdout.write(`${line}\n`);
const failpoint = process.env.FAILPOINT;
if (failpoint) {
  const apply = runtime.store.apply.bind(runtime.store);
  runtime.store.apply = async (change) => {
    const thread = 'threadId' in change ? change.threadId : '-';
    if (failpoint === 'hang-before-commit') {
      say(`about-to-commit ${thread}`);
      await new Promise(() => undefined);
    }
    const result = await apply(change);
    if (failpoint === 'hang-after-commit') {
      say(`committed ${thread}`);
      await new Promise(() => undefined);
    }
    return result;
  };
}
process.on('SIGTERM', () => {
  void runtime.stop().then(() => {
    say('stopped');
    process.exit(0);
  });
});
await runtime.start(['reflection']);
say('ready');
