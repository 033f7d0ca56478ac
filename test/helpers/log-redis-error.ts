/**
 * Logs through engram's own logger (stdout, JSON) the error of a Redis command that Redis refused,
 * with `process.argv[2]` among the command's arguments: as itself, as another error's cause, in a
 * refused MULTI's `previousErrors` and in an AggregateError.
 * Run as a child by test/log-redaction.test.ts, which reads the lines.
 */
import { createLogger } from '../../src/observability/logger.js';
import { redisClient } from '../../src/queue/connection.js';

const redis = redisClient(process.env.REDIS_URL ?? '', {});
const log = createLogger({ level: 'info' });
try {
  // What a full Redis answers an append (OOM under noeviction), with the turn in the arguments.
  await redis.eval("return redis.error_reply('OOM command not allowed')", 0, process.argv[2] ?? '');
} catch (err) {
  log.warn({ err }, 'refused');
  log.warn({ err: new Error('append failed', { cause: err }) }, 'refused, as a cause');
}
try {
  // A MULTI with a command Redis refuses (one argument too many): EXECABORT, each queued command's
  // error in previousErrors.
  await redis
    .multi()
    .call('GET', process.argv[2] ?? '', 'one too many')
    .exec();
} catch (err) {
  log.warn({ err }, 'refused, in a transaction');
  log.warn({ err: new AggregateError([err], 'several failed') }, 'refused, in an aggregate');
} finally {
  redis.disconnect();
}
