import { Cluster, Redis, type RedisOptions } from 'ioredis';
import { redisUnavailable } from '../dependency-errors.js';
import type { Logger } from '../observability/logger.js';
import { clusterSeeds, isClusterUrl, type RedisClient } from '../core/redis-layout.js';
import { InputError } from '../errors.js';

export type { RedisClient };

/**
 * A connection for a URL: `redis://` and `rediss://` as ioredis reads them; `redis+cluster://`
 * and `rediss+cluster://host:port[,host:port...]` a Cluster seeded from those nodes (it learns
 * the others from the first that answers), with the user, password and TLS of the URL for every
 * node. A cluster is named by its URL rather than by a separate setting, so that every place that
 * takes REDIS_URL (processes, the SDK, the jobs CLI) reaches it alike (docs/decisions.md).
 */
export function redisClient(
  url: string,
  options: RedisOptions,
  cluster: { slotsRefreshTimeout?: number } = {},
): RedisClient {
  if (!isClusterUrl(url)) return new Redis(url, options);
  const seeds = clusterSeeds(url);
  // The settings schemas refuse such a URL first; this is for a caller that skipped them.
  if (typeof seeds === 'string') throw new InputError(`REDIS_URL ${seeds}`);
  const { enableOfflineQueue, enableReadyCheck, lazyConnect, ...node } = options;
  const redisOptions: RedisOptions = { ...node };
  if (seeds.username) redisOptions.username = seeds.username;
  if (seeds.password) redisOptions.password = seeds.password;
  if (seeds.tls) redisOptions.tls = {};
  return new Cluster(seeds.nodes, {
    redisOptions,
    ...cluster,
    ...(enableOfflineQueue === undefined ? {} : { enableOfflineQueue }),
    ...(enableReadyCheck === undefined ? {} : { enableReadyCheck }),
    ...(lazyConnect === undefined ? {} : { lazyConnect }),
  });
}

/**
 * One process' view of whether Redis is reachable, for its logs: every connection, queue and
 * worker of the process reports its errors here. A 3-second Redis restart made them write 83
 * warn and error lines (every connection and BullMQ object, every reconnect); now the first
 * connection error is one line, the others are counted, and a connection getting ready again
 * is the second line. Errors that are not about reaching Redis are logged as they come.
 * "Reachable again" waits for every watched connection that closed to be ready: the first one
 * back is not the last, and a straggler's error would otherwise open a second outage in the log.
 */
export class RedisHealth {
  private down: { since: number; suppressed: number } | null = null;
  /** Watched connections that closed and have not been ready since; 'end' (given up, or quit) drops one. */
  private readonly closed = new Set<RedisClient>();

  constructor(private readonly log: Logger) {}

  get reachable(): boolean {
    return this.down === null;
  }

  /**
   * `fields` say where the error was met; a `component` among them is logged as `source`, since
   * this logger's own `component` is `redis` and pino would write the key twice (a line with a
   * duplicate key is refused or cut by JSON log shippers).
   */
  error(err: Error, { component, ...rest }: Record<string, unknown> = {}): void {
    const fields = component === undefined ? rest : { source: component, ...rest };
    if (!redisUnavailable(err) && err.message !== 'Command timed out') {
      this.log.warn({ err, ...fields }, 'redis error');
    } else if (this.down) {
      this.down.suppressed++;
    } else {
      this.down = { since: Date.now(), suppressed: 0 };
      this.log.warn(
        { err, ...fields },
        'redis unreachable; retrying (further connection errors are counted, not logged)',
      );
    }
  }

  ready(): void {
    if (!this.down || this.closed.size > 0) return;
    const { since, suppressed } = this.down;
    this.down = null;
    this.log.info({ downMs: Date.now() - since, suppressedErrors: suppressed }, 'redis reachable again');
  }

  /** Reports a connection's errors and readiness here. */
  watch(redis: RedisClient, fields: Record<string, unknown> = {}): void {
    // Without an `error` listener ioredis crashes the host on a Redis restart (docs/prior-art.md: mem0 #7294).
    redis.on('error', (err: Error) => this.error(err, fields));
    redis.on('close', () => this.closed.add(redis));
    // Not a sign Redis is back (a quit during an outage ends too); the next 'ready' says so.
    redis.on('end', () => this.closed.delete(redis));
    redis.on('ready', () => {
      this.closed.delete(redis);
      this.ready();
    });
  }
}

/**
 * `lazy`: connect on first use (the SDK's client), not at once.
 * Producers fail fast (no offline queue, one retry): a chat turn must get an error at once
 * when Redis is down, not hang. A stalled (connected but silent) Redis is the Producer's
 * deadline's job, not ioredis' `commandTimeout`, which costs a timer per command (deadline.ts);
 * `commandTimeoutMs` is for connections off the hot path (Bull Board, the jobs CLI).
 * Workers wait forever (`maxRetriesPerRequest: null`, which BullMQ requires for blocking
 * connections) and ride out a Redis restart.
 */
export function createRedis(
  url: string,
  role: 'producer' | 'worker',
  log: Logger,
  {
    lazy = false,
    commandTimeoutMs,
    health = new RedisHealth(log),
    name = role,
  }: { lazy?: boolean; commandTimeoutMs?: number; health?: RedisHealth; name?: string } = {},
): RedisClient {
  // No cluster-wide ready check for workers: one that meets `cluster_state:fail` (a master's
  // failover) makes ioredis reconnect by itself, but leaves the connect() that ran it pending for
  // ever, and BullMQ awaits that connect() when it reconnects a worker's blocking connection: a
  // shard's worker stopped for good after another master's failover, in 4 of about 110 runs of
  // test/redis-failover.test.ts (docs/decisions.md). Each node still checks it has loaded its
  // data, and a command sent while the cluster is down gets CLUSTERDOWN, which ioredis retries.
  const opts: RedisOptions =
    role === 'producer'
      ? { enableOfflineQueue: false, maxRetriesPerRequest: 1, connectTimeout: 2_000, lazyConnect: lazy }
      : { maxRetriesPerRequest: null, enableReadyCheck: !isClusterUrl(url) };
  if (commandTimeoutMs !== undefined) opts.commandTimeout = commandTimeoutMs;
  const redis = redisClient(url, { ...opts, connectionName: `engram-${name}` });
  health.watch(redis, { role: name });
  return redis;
}

/**
 * Resolves once the connection is ready: producers must not accept turns before, and a process
 * started while Redis is down (a restart, a deploy racing Redis) waits for it instead of exiting,
 * saying so every `logEveryMs`. Rejects after `timeoutMs` only when one is given.
 */
export async function waitReady(
  redis: RedisClient,
  { timeoutMs, log, logEveryMs = 10_000 }: { timeoutMs?: number; log?: Logger; logEveryMs?: number } = {},
): Promise<void> {
  if (redis.status === 'ready') return;
  const started = Date.now();
  await new Promise<void>((resolve, reject) => {
    const timer =
      timeoutMs === undefined
        ? undefined
        : setTimeout(() => {
            cleanup();
            reject(new Error(`Redis not ready after ${timeoutMs} ms (status ${redis.status})`));
          }, timeoutMs);
    const ticker = log
      ? setInterval(
          () => log.warn({ waitedMs: Date.now() - started, status: redis.status }, 'waiting for Redis'),
          logEveryMs,
        )
      : undefined;
    const onReady = () => {
      cleanup();
      resolve();
    };
    const cleanup = () => {
      clearTimeout(timer);
      clearInterval(ticker);
      redis.off('ready', onReady);
    };
    redis.on('ready', onReady);
  });
}
