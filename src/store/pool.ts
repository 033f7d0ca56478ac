import pg from 'pg';
import type { Logger } from '../observability/logger.js';
import type { Db, Queryable, QueryResult, Row, TransactionOptions } from './db.js';
import { localSettingsSql } from './db.js';
import { encodeVector, encodeVectorArray } from './vector-codec.js';

/**
 * A pooled Postgres client. Never one shared `pg.Client` (docs/prior-art.md: mem0 #6956), and always an
 * `error` listener so a Postgres restart is logged and survived instead of crashing the host
 * (docs/prior-art.md: mem0 #7294).
 */
export function createPool(connectionString: string, max: number, log: Logger, timeouts: PoolTimeouts = {}): pg.Pool {
  const queryTimeoutMs = timeouts.queryTimeoutMs ?? 30_000;
  const pool = new pg.Pool({
    connectionString,
    max,
    idleTimeoutMillis: 30_000,
    connectionTimeoutMillis: timeouts.connectMs ?? 5_000,
    statement_timeout: queryTimeoutMs,
    // The client waits 2 s past Postgres' own timeout: a live server's cancellation, with its
    // clearer error, comes first; a server that stopped answering cannot hold a query for good.
    ...(queryTimeoutMs ? { query_timeout: timeouts.queryMs ?? queryTimeoutMs + 2_000 } : {}),
    // JIT compiled the reflection's snapshot read for ~500 ms at 10,000 memories, for a
    // statement that runs in 15 ms; engram's queries are short, so JIT never pays off.
    options: '-c jit=off',
    application_name: 'engram',
  });
  pool.on('error', (err) => log.warn({ err }, 'idle postgres client error'));
  return pool;
}

export interface PoolTimeouts {
  /** Waiting for a connection: a new one's connect and login, or a free one of a full pool (5 s). */
  connectMs?: number;
  /** Postgres' statement_timeout (ms; 0: none; 30 s when unset). */
  queryTimeoutMs?: number;
  /** The client-side bound on one statement (default: 2 s past `queryTimeoutMs`). */
  queryMs?: number;
}

/** The store's Db over a Postgres pool. */
export function createPgDb(connectionString: string, max: number, log: Logger, timeouts: PoolTimeouts = {}): Db {
  return new PgDb(createPool(connectionString, max, log, timeouts));
}

/** pg's client-side timeout: the query may still be running, so its connection is not reused. */
const readTimedOut = (err: unknown) => err instanceof Error && err.message === 'Query read timeout';

export class PgDb implements Db {
  readonly backend = 'postgres';
  private vectorOid: Promise<number> | null = null;

  constructor(readonly pool: pg.Pool) {}

  async query<R = Row>(text: string, params?: unknown[]): Promise<QueryResult<R>> {
    return normalize(await this.pool.query(text, params));
  }

  async exec(text: string): Promise<void> {
    await this.pool.query(text);
  }

  async session<T>(fn: (s: Queryable) => Promise<T>): Promise<T> {
    const client = await this.pool.connect();
    try {
      return await fn(wrap(client));
    } finally {
      // A session may have changed settings: do not hand it to the next borrower.
      client.release(true);
    }
  }

  async transaction<T>(fn: (tx: Queryable) => Promise<T>, options: TransactionOptions = {}): Promise<T> {
    const client = await this.pool.connect();
    const tx = wrap(client);
    let broken = false;
    try {
      // One simple-protocol query of two statements: one round trip for both.
      await client.query(options.settings ? `begin; ${localSettingsSql(options.settings)}` : 'begin');
      const result = await fn(tx);
      await client.query('commit');
      return result;
    } catch (err) {
      // A connection that stopped answering would only time the rollback out too: drop it, and
      // Postgres rolls back when it sees the connection gone.
      broken = readTimedOut(err);
      if (!broken) await client.query('rollback').catch(() => undefined);
      throw err;
    } finally {
      client.release(broken);
    }
  }

  // Binary parameters: Postgres parsing 1,536 floats of text per vector was the bottleneck of
  // batched puts (measured here: 2,400 rows/s as text, 9,800 rows/s binary).
  vectorParam(vector: number[]): unknown {
    return encodeVector(vector);
  }

  async vectorArrayParam(vectors: number[][]): Promise<unknown> {
    return encodeVectorArray(vectors, await this.oid());
  }

  async close(): Promise<void> {
    await this.pool.end();
  }

  /** A binary array names its element type by oid, which depends on the database. */
  private oid(): Promise<number> {
    this.vectorOid ??= this.pool
      .query(
        `select t.oid from pg_type t join pg_extension e on e.extnamespace = t.typnamespace where e.extname = 'vector' and t.typname = 'vector'`,
      )
      .then((res) => Number((res.rows[0] as { oid: unknown }).oid))
      .catch((err: unknown) => {
        this.vectorOid = null;
        throw err;
      });
    return this.vectorOid;
  }
}

function wrap(client: pg.PoolClient): Queryable {
  return {
    query: async <R>(text: string, params?: unknown[]) => normalize<R>(await client.query(text, params)),
    exec: async (text: string) => void (await client.query(text)),
  };
}

function normalize<R>(res: pg.QueryResult): QueryResult<R> {
  return { rows: res.rows as R[], rowCount: res.rowCount ?? res.rows.length };
}
