import { postgresPoolBusy, postgresUnavailable, redisUnavailable } from '../dependency-errors.js';
import {
  AuthError,
  coerceError,
  ConflictError,
  InputError,
  PermanentError,
  RetryableError,
  UnavailableError,
} from '../errors.js';

export { UnavailableError };

/**
 * What the SDK's callers get: only its exported classes (InputError, UnavailableError and other
 * RetryableErrors, PermanentError), each keeping the original as `cause`. The translation runs
 * only when a call fails: a call that succeeds pays nothing for it.
 */
export function toSdkError(thrown: unknown): Error {
  if (
    thrown instanceof InputError ||
    thrown instanceof ConflictError ||
    thrown instanceof AuthError ||
    thrown instanceof RetryableError ||
    thrown instanceof PermanentError
  )
    return thrown;
  const err = coerceError(thrown);
  if (redisUnavailable(err))
    return new UnavailableError(
      'redis',
      `Redis is not reachable (${err.message}); try again later, with the same message ids for turns`,
      { cause: err },
    );
  if (postgresPoolBusy(err))
    return new UnavailableError(
      'postgres',
      "the memory store (Postgres) had no free connection in time: every connection of the client's pool was busy; try again later",
      { cause: err },
    );
  if (postgresUnavailable(err))
    return new UnavailableError(
      'postgres',
      `the memory store (Postgres) is not reachable (${err.message}); try again later`,
      {
        cause: err,
      },
    );
  return new PermanentError(`engram SDK call failed: ${err.message}`, { cause: err });
}
