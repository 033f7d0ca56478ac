import { postgresUnavailable, redisUnavailable } from '../dependency-errors.js';
import { coerceError, InputError, PermanentError, RetryableError } from '../errors.js';
import { RedisTimeoutError } from '../queue/deadline.js';

/**
 * Redis or Postgres is out of reach or does not answer in time, or no engram service has
 * published its settings yet: the same call may succeed later. After an enqueue failed so, send
 * the turns again with the same message ids: some may have been buffered all the same.
 */
export class UnavailableError extends RetryableError {
  override name = 'UnavailableError';
}

/**
 * What the SDK's callers get: only its exported classes (InputError, UnavailableError and other
 * RetryableErrors, PermanentError), each keeping the original as `cause`. The translation runs
 * only when a call fails: a call that succeeds pays nothing for it.
 */
export function toSdkError(thrown: unknown): Error {
  if (thrown instanceof RedisTimeoutError) return new UnavailableError(thrown.message, { cause: thrown });
  if (thrown instanceof InputError || thrown instanceof RetryableError || thrown instanceof PermanentError)
    return thrown;
  const err = coerceError(thrown);
  if (redisUnavailable(err))
    return new UnavailableError(
      `Redis is not reachable (${err.message}); try again later, with the same message ids for turns`,
      { cause: err },
    );
  if (postgresUnavailable(err))
    return new UnavailableError(`the memory store (Postgres) is not reachable (${err.message}); try again later`, {
      cause: err,
    });
  return new PermanentError(`engram SDK call failed: ${err.message}`, { cause: err });
}
