import type { Logger } from '../observability/logger.js';
import type { Db, Queryable, QueryOptions, QueryResult, Row, TransactionOptions, Tx } from './db.js';
import { createPgDb, type StatementOptions } from './pool.js';
import { SOCKET_DOWN } from '../dependency-errors.js';

/**
 * A replica that hands out no connection within this long is treated as down. Loopback and LAN
 * logins take a few milliseconds; the time limit is what one read pays for a replica that is
 * unreachable (a refused connection fails at once). It also covers a replica pool with every
 * connection busy: shedding those reads to the primary for a while is the right call too.
 */
export const REPLICA_CONNECT_TIMEOUT_MS = 2_000;
/** A replica found down is skipped this long; then one read tries it again (the others keep away). */
export const REPLICA_RETRY_AFTER_MS = 5_000;
/**
 * Client-side bound on one replica statement: past the server's statement_timeout (30 s), so it
 * fires only for a replica that stopped answering on an open connection (a partition, a frozen
 * host), where the read would otherwise wait for TCP to notice.
 */
const REPLICA_QUERY_TIMEOUT_MS = 35_000;

interface Replica {
  db: Db;
  /** host:port/database, never the password: it is logged. */
  name: string;
  down: boolean;
  retryAt: number;
}

/**
 * Reads spread over streaming read replicas (DATABASE_READ_URL), round robin. A read that
 * cannot reach a replica runs on the next one, or on the primary when none is up, and that
 * replica is skipped for REPLICA_RETRY_AFTER_MS: a replica going down costs one read at most
 * REPLICA_CONNECT_TIMEOUT_MS, and reads do not fail. A replica cancelling a read for a conflict
 * with recovery (it replayed the removal of rows the read needed) is not down: that read alone
 * runs again on the primary. An error of the statement itself is the caller's, as on the primary.
 *
 * Replicas lag: a read sees the primary as it was a moment ago (docs/deploying.md). Only reads
 * a caller accepts stale go here (MemoryDb decides); nothing here writes.
 */
export class ReplicaDb implements Db {
  readonly backend = 'postgres';
  private readonly replicas: Replica[];
  private next = 0;

  constructor(
    replicas: { db: Db; name: string }[],
    private readonly primary: Db,
    private readonly log: Logger,
  ) {
    this.replicas = replicas.map((r) => ({ ...r, down: false, retryAt: 0 }));
  }

  query<R = Row>(text: string, params?: unknown[], options?: QueryOptions): Promise<QueryResult<R>> {
    return this.run((db) => db.query<R>(text, params, options));
  }

  exec(text: string): Promise<void> {
    return this.run((db) => db.exec(text));
  }

  transaction<T>(fn: (tx: Tx) => Promise<T>, options?: TransactionOptions): Promise<T> {
    return this.run((db) => db.transaction(fn, options));
  }

  session<T>(fn: (s: Queryable) => Promise<T>): Promise<T> {
    return this.run((db) => db.session(fn));
  }

  vectorParam(vector: number[]): unknown {
    return this.primary.vectorParam(vector);
  }

  /** The `vector` type's oid is the primary's: a physical replica is a copy of its catalogs. */
  vectorArrayParam(vectors: number[][]): Promise<unknown> {
    return this.primary.vectorArrayParam(vectors);
  }

  /** Closes the replicas' pools; the primary is its owner's to close. */
  async close(): Promise<void> {
    await Promise.allSettled(this.replicas.map((r) => r.db.close()));
  }

  /** Which replicas are skipped now (for readiness pages and tests). */
  status(): { name: string; down: boolean }[] {
    return this.replicas.map(({ name, down }) => ({ name, down }));
  }

  private async run<T>(fn: (db: Db) => Promise<T>): Promise<T> {
    for (let tried = 0; tried < this.replicas.length; tried++) {
      const replica = this.pick();
      if (!replica) break;
      try {
        const result = await fn(replica.db);
        if (replica.down) {
          replica.down = false;
          this.log.info({ replica: replica.name }, 'read replica reachable again');
        }
        return result;
      } catch (err) {
        const failure = classify(err);
        if (failure === 'statement') throw err;
        if (failure === 'conflict') {
          this.log.debug(
            { replica: replica.name, err },
            'read cancelled by replay on the replica; reading the primary',
          );
          return fn(this.primary);
        }
        if (!replica.down)
          this.log.warn(
            { replica: replica.name, err, retryInMs: REPLICA_RETRY_AFTER_MS },
            'read replica unreachable; its reads go to the other replicas or the primary',
          );
        replica.down = true;
        replica.retryAt = Date.now() + REPLICA_RETRY_AFTER_MS;
      }
    }
    return fn(this.primary);
  }

  /**
   * The next replica in turn that is up, or down and due for another try (then it is due again
   * only after another wait, so that concurrent reads do not all pay for the same probe).
   */
  private pick(): Replica | null {
    const now = Date.now();
    for (let i = 0; i < this.replicas.length; i++) {
      const replica = this.replicas[(this.next + i) % this.replicas.length] as Replica;
      if (replica.down && now < replica.retryAt) continue;
      this.next = (this.next + i + 1) % this.replicas.length;
      if (replica.down) replica.retryAt = now + REPLICA_RETRY_AFTER_MS;
      return replica;
    }
    return null;
  }
}

/**
 * `down`: the replica cannot serve (no connection, cut, shutting down, starting up, full);
 * `conflict`: a hot-standby cancellation of this read (SQLSTATE 40001 or 40P01 on a replica);
 * `statement`: anything else, which the primary would answer the same way.
 */
function classify(err: unknown): 'down' | 'conflict' | 'statement' {
  if (err instanceof AggregateError) return err.errors.some((e) => classify(e) === 'down') ? 'down' : 'statement';
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string') {
    if (SOCKET_DOWN.has(code) || code.startsWith('08') || /^57P0[123]$/.test(code) || code === '53300') return 'down';
    if (code === '40001' || code === '40P01') return 'conflict';
  }
  const message = err instanceof Error ? err.message : '';
  return /timeout exceeded when trying to connect|Connection terminated|Query read timeout/.test(message)
    ? 'down'
    : 'statement';
}

/** host:port/database of a connection string, for logs (never its user or password). */
export function replicaName(url: string): string {
  const u = new URL(url);
  return `${u.hostname}:${u.port || '5432'}${u.pathname}`;
}

/** The read replicas' Db over pools of `poolMax` connections each, falling back to `primary`. */
export function createReplicaDb(
  urls: string[],
  primary: Db,
  poolMax: number,
  log: Logger,
  pool: StatementOptions = {},
): ReplicaDb {
  const replicas = urls.map((url) => ({
    name: replicaName(url),
    db: createPgDb(url, poolMax, log, {
      ...pool,
      connectMs: REPLICA_CONNECT_TIMEOUT_MS,
      queryMs: REPLICA_QUERY_TIMEOUT_MS,
    }),
  }));
  log.info({ replicas: replicas.map((r) => r.name) }, 'reads that accept lag go to read replicas');
  return new ReplicaDb(replicas, primary, log);
}
