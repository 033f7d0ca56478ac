import { ReplyError } from 'ioredis';
import pg from 'pg';

/**
 * Whether a failure means a dependency is out of reach for now (worth retrying as it is), known
 * by what the drivers throw: neither ioredis nor pg has one class for it.
 */

/**
 * ioredis rejects a command on a lost connection with plain Errors of these messages, or with a
 * MaxRetriesPerRequestError once reconnecting outlasts the command's retries (known by its name:
 * ioredis does not export the class).
 */
const REDIS_DOWN = new Set(["Stream isn't writeable and enableOfflineQueue options is false", 'Connection is closed.']);
/**
 * A Redis Cluster client that tried a command `maxRedirections` times wraps the last error in a
 * plain Error of this message: during a master's failover, the dead master's closed connection,
 * a MOVED back to it or CLUSTERDOWN, until its replica is promoted. Not known here, it made the
 * API answer such turns with 500 (test/redis-failover.test.ts) and the SDK throw a
 * PermanentError, where a retry a moment later succeeds.
 */
const CLUSTER_GAVE_UP = 'Too many Cluster redirections. Last error: ';
/** Replies of a Redis that is there but cannot take the command now: failover, loading, full. */
const REDIS_BUSY = /^(OOM|READONLY|LOADING|BUSY|MASTERDOWN|TRYAGAIN|CLUSTERDOWN|NOREPLICAS)\b/;

/** Node's socket errors for a server that is down, restarting or out of reach. */
export const SOCKET_DOWN: ReadonlySet<string> = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EPIPE',
]);

/**
 * A socket that could not reach its server: either driver's, since both throw Node's own error.
 * Only the caller knows whose connection it was (see the SDK's `toSdkError`).
 */
export function socketDown(error: Error): boolean {
  const { code, syscall } = error as NodeJS.ErrnoException;
  return syscall !== undefined && code !== undefined && SOCKET_DOWN.has(code);
}

export function redisUnavailable(error: Error): boolean {
  if (error instanceof ReplyError) return REDIS_BUSY.test(error.message);
  return (
    error.name === 'MaxRetriesPerRequestError' ||
    REDIS_DOWN.has(error.message) ||
    error.message.startsWith(CLUSTER_GAVE_UP) ||
    socketDown(error)
  );
}

/**
 * ioredis' error for a command that got no answer within its connection's `commandTimeout` (the
 * connections off the hot path: Bull Board, erase, the jobs CLI): a Redis connected but stalled.
 */
export function redisStalled(error: Error): boolean {
  return error.message === 'Command timed out';
}

/**
 * What is wrong with Redis, as an answer says it: "queue unavailable (Redis <state>)". A Redis
 * that refuses the command (full, a replica, loading) is there: "not reachable" sent its operator
 * to the network when the fix is maxmemory, the URL or patience (found by review: a full Redis
 * was answered as unreachable). Only for errors redisUnavailable or redisStalled accepted.
 */
export function redisState(error: Error): string {
  if (redisStalled(error)) return 'did not answer in time';
  // A cluster client that gave up names the last reply it got (CLUSTERDOWN during a failover).
  const said = error instanceof ReplyError ? error.message : afterPrefix(error.message, CLUSTER_GAVE_UP);
  const reply = said === undefined ? undefined : REDIS_BUSY.exec(said.replace(/^ReplyError: /, ''))?.[1];
  return (reply && REFUSED_BECAUSE[reply]) ?? 'is not reachable';
}

const afterPrefix = (text: string, prefix: string) => (text.startsWith(prefix) ? text.slice(prefix.length) : undefined);

const REFUSED_BECAUSE: Readonly<Record<string, string>> = {
  OOM: 'is out of memory: it refuses writes past its maxmemory',
  READONLY: 'is a read-only replica: REDIS_URL must name the primary',
  LOADING: 'is loading its data after a restart',
  BUSY: 'is busy running a script',
  MASTERDOWN: 'lost its link to its primary',
  NOREPLICAS: 'has too few replicas for a write',
  CLUSTERDOWN: 'cluster is down',
  TRYAGAIN: 'cluster is moving the slot',
};

/** pg-pool's error when no connection of a full pool came free in time. */
const POOL_BUSY = 'timeout exceeded when trying to connect';

/**
 * Every connection of the pool stayed busy past the wait for one: a load spike, slow
 * statements, or a Postgres that stopped answering them. Unavailable too, but not "unreachable":
 * the operator looks at the pool's size and what holds its connections, not at the network.
 */
export const postgresPoolBusy = (error: Error): boolean => error.message === POOL_BUSY;

/** pg's own errors for a connection lost, or not had in time. */
const PG_DOWN = new Set([
  'Connection terminated unexpectedly',
  'Connection terminated due to connection timeout',
  POOL_BUSY,
  'Client has encountered a connection error and is not queryable',
  // query_timeout (pool.ts): connected, but no answer in time.
  'Query read timeout',
]);

/**
 * A server that answers may still refuse: class 08 (connection exception) and 57P01-57P03
 * (shutting down, starting up).
 */
export function postgresUnavailable(error: Error): boolean {
  if (error instanceof pg.DatabaseError) return /^(08|57P0[123])/.test(error.code ?? '');
  return socketDown(error) || PG_DOWN.has(error.message);
}
