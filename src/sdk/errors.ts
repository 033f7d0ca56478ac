import pg from 'pg';
import {
  postgresPoolBusy,
  postgresUnavailable,
  redisStalled,
  redisState,
  redisUnavailable,
  socketDown,
} from '../dependency-errors.js';
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

/** The dependency a call was reaching when it failed: whose a bare socket error is. */
export type Reaching = 'redis' | 'postgres';

/**
 * What the SDK's callers get: only its exported classes (InputError, UnavailableError and other
 * RetryableErrors, PermanentError), each keeping the original as `cause`. The translation runs
 * only when a call fails: a call that succeeds pays nothing for it.
 *
 * `reaching` names the dependency a refused or lost socket belongs to: ioredis and pg both throw
 * Node's own ECONNREFUSED, so a store call on a Postgres that is down would otherwise be told
 * "Redis is not reachable, send the turns again", sending its operator to the wrong server.
 */
export function toSdkError(thrown: unknown, reaching: Reaching = 'redis'): Error {
  if (
    thrown instanceof InputError ||
    thrown instanceof ConflictError ||
    thrown instanceof AuthError ||
    thrown instanceof RetryableError ||
    thrown instanceof PermanentError
  )
    return thrown;
  const err = coerceError(thrown);
  if (redisStalled(err))
    return new UnavailableError('redis', 'Redis did not answer in time (stalled); try again later', { cause: err });
  const socket = socketDown(err);
  if (socket ? reaching === 'redis' : redisUnavailable(err))
    return new UnavailableError(
      'redis',
      `Redis ${redisState(err)} (${err.message}); try again later, with the same message ids for turns`,
      { cause: err },
    );
  if (postgresPoolBusy(err))
    return new UnavailableError(
      'postgres',
      "the memory store (Postgres) had no free connection in time: every connection of the client's pool was busy; try again later",
      { cause: err },
    );
  if (socket || postgresUnavailable(err))
    return new UnavailableError(
      'postgres',
      `the memory store (Postgres) is not reachable (${err.message}); check the client's \`databaseUrl\`, or try again later`,
      { cause: err },
    );
  return new PermanentError(`engram SDK call failed: ${err.message}${storeHint(err)}`, { cause: err });
}

/**
 * A store call's failure as its caller gets it: the abort reason the caller gave to a read, as
 * given (not an SDK failure to translate), anything else as `toSdkError` says for Postgres.
 */
export function toSdkStoreError(thrown: unknown, signal?: AbortSignal): unknown {
  if (signal?.aborted && thrown === signal.reason) return thrown;
  return toSdkError(thrown, 'postgres');
}

/**
 * What to change when Postgres refuses the client's setup rather than its call: the service
 * checks both at start (store/migrate.ts), but the SDK opens a database it did not migrate.
 */
function storeHint(err: Error): string {
  if (!(err instanceof pg.DatabaseError)) return '';
  if (err.code === '42P01' || err.code === '3F000')
    return "; the client's `schema` holds no engram tables: give it the service's DATABASE_SCHEMA ('engram' when unset), and check `databaseUrl`";
  if (/^different vector dimensions \d+ and \d+$/.test(err.message))
    return "; the client's embeddings have another size than the store's: give `embedding.dimensions` (and `model`) the service's EMBEDDING_DIMENSIONS (and EMBEDDING_MODEL)";
  return '';
}
