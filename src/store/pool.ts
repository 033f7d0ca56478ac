import { createHash } from 'node:crypto';
import pg from 'pg';
import type { Logger } from '../observability/logger.js';
import type { Db, Queryable, QueryOptions, QueryResult, Row, TransactionOptions, Tx } from './db.js';
import { localSettingsSql } from './db.js';
import { sendCancel } from './cancel-request.js';
import { encodeVector, encodeVectorArray } from './vector-codec.js';

/**
 * A pooled Postgres client. Never one shared `pg.Client` (docs/prior-art.md: mem0 #6956), and always an
 * `error` listener so a Postgres restart is logged and survived instead of crashing the host
 * (docs/prior-art.md: mem0 #7294).
 */
export function createPool(connectionString: string, max: number, log: Logger, options: PoolOptions = {}): pg.Pool {
  const queryTimeoutMs = options.queryTimeoutMs ?? 30_000;
  const pool = new pg.Pool({
    connectionString,
    max,
    idleTimeoutMillis: 30_000,
    connectionTimeoutMillis: options.connectMs ?? 5_000,
    statement_timeout: queryTimeoutMs,
    // The client waits 2 s past Postgres' own timeout: a live server's cancellation, with its
    // clearer error, comes first; a server that stopped answering cannot hold a query for good.
    ...(queryTimeoutMs ? { query_timeout: options.queryMs ?? queryTimeoutMs + 2_000 } : {}),
    // JIT compiled the reflection's snapshot read for ~500 ms at 10,000 memories, for a
    // statement that runs in 15 ms; engram's queries are short, so JIT never pays off.
    options: '-c jit=off',
    application_name: 'engram',
    // Statements issued before the ones ahead of them are answered go out at once (a
    // transaction's begin with its first statements, its last statement with its commit). Code
    // that awaits each statement runs as before.
    pipeline: options.pipeline ?? true,
  });
  pool.on('error', (err) => log.warn({ err }, 'idle postgres client error'));
  return pool;
}

/** How statements travel, set per deployment (DATABASE_PREPARE, DATABASE_PIPELINE). */
export type StatementOptions = Pick<PoolOptions, 'prepare' | 'pipeline'>;

export interface PoolOptions {
  /**
   * Send statements without waiting for the ones ahead (default true). Off for a pooler that
   * cannot take pipelined queries (DATABASE_PIPELINE).
   */
  pipeline?: boolean;
  /**
   * Prepare the statements that ask for it (`QueryOptions.prepare`; default true). Off behind a
   * pooler that cannot keep prepared statements (DATABASE_PREPARE).
   */
  prepare?: boolean;
  /** Waiting for a connection: a new one's connect and login, or a free one of a full pool (5 s). */
  connectMs?: number;
  /** Postgres' statement_timeout (ms; 0: none; 30 s when unset). */
  queryTimeoutMs?: number;
  /** The client-side bound on one statement (default: 2 s past `queryTimeoutMs`). */
  queryMs?: number;
}

/** The store's Db over a Postgres pool. */
export function createPgDb(connectionString: string, max: number, log: Logger, options: PoolOptions = {}): Db {
  return new PgDb(createPool(connectionString, max, log, options), options.prepare ?? true, options.pipeline ?? true);
}

/** How often a cancelled statement still running is cancelled again, and how many times in all. */
const CANCEL_AGAIN_MS = 500;
const CANCEL_TRIES = 10;

/** pg's client-side timeout: the query may still be running, so its connection is not reused. */
const readTimedOut = (err: unknown) => err instanceof Error && err.message === 'Query read timeout';

export class PgDb implements Db {
  readonly backend = 'postgres';
  private vectorOid: Promise<number> | null = null;

  constructor(
    readonly pool: pg.Pool,
    private readonly prepare = true,
    private readonly pipeline = true,
  ) {}

  async query<R = Row>(text: string, params?: unknown[], options?: QueryOptions): Promise<QueryResult<R>> {
    const query = prepared(text, params, options, this.prepare);
    if (!options?.signal) return normalize(await this.pool.query(query));
    return this.cancellable(options.signal, async (client) => normalize<R>(await client.query(query)));
  }

  /**
   * Runs `work` on a connection of its own, whose statement Postgres cancels when `signal`
   * aborts; rejects then with the signal's reason. The connection is closed, not pooled, after a
   * cancel: one that arrived after its statement ended would stop the next borrower's.
   */
  private async cancellable<T>(signal: AbortSignal, work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    signal.throwIfAborted();
    const { client, release } = await this.checkout();
    let cancelled = false;
    let broken = false;
    let again: NodeJS.Timeout | undefined;
    const onAbort = () => {
      cancelled = true;
      sendCancel(client);
      // Postgres drops a cancel that finds the connection between statements (one overtaken
      // by its own statement, or sent between a transaction's): sent again until `work` ends.
      let sent = 1;
      again = setInterval(() => {
        // A server that takes no cancel at all is left to the statement's own timeout.
        if (sent++ >= CANCEL_TRIES) return clearInterval(again);
        sendCancel(client);
      }, CANCEL_AGAIN_MS);
      again.unref();
    };
    signal.addEventListener('abort', onAbort, { once: true });
    try {
      // Aborted while the connection was being had: nothing has run yet.
      signal.throwIfAborted();
      return await work(client);
    } catch (err) {
      broken = readTimedOut(err);
      throw cancelled ? signal.reason : err;
    } finally {
      clearInterval(again);
      signal.removeEventListener('abort', onAbort);
      release(cancelled || broken);
    }
  }

  async exec(text: string): Promise<void> {
    await this.pool.query(text);
  }

  async session<T>(fn: (s: Queryable) => Promise<T>): Promise<T> {
    const { client, release } = await this.checkout();
    try {
      return await fn(wrap(client, this.prepare));
    } finally {
      // A session may have changed settings: do not hand it to the next borrower.
      release(true);
    }
  }

  /**
   * A connection of the pool, listened to while it is out: a connection that Postgres ends (a
   * restart, `pg_terminate_backend`, a failover) emits `error`, and pg's pool listens only to
   * idle ones, so without this the process died of an uncaught exception. The statements in
   * flight fail on their own; `release` then drops the connection instead of pooling it.
   */
  private async checkout(): Promise<{ client: pg.PoolClient; release: (broken: boolean) => void }> {
    const client = await this.pool.connect();
    let lost = false;
    const onError = () => {
      lost = true;
    };
    client.on('error', onError);
    return {
      client,
      release: (broken) => {
        client.removeListener('error', onError);
        client.release(broken || lost);
      },
    };
  }

  async transaction<T>(fn: (tx: Tx) => Promise<T>, options: TransactionOptions = {}): Promise<T> {
    const { signal } = options;
    if (signal) return this.cancellable(signal, (client) => this.inTransaction(client, fn, options));
    const { client, release } = await this.checkout();
    let broken = false;
    try {
      return await this.inTransaction(client, fn, options);
    } catch (err) {
      // A connection that stopped answering would only time the rollback out too: drop it, and
      // Postgres rolls back when it sees the connection gone.
      broken = readTimedOut(err);
      throw err;
    } finally {
      release(broken);
    }
  }

  /** `fn` between a begin and a commit on `client`; a rollback when it throws. */
  private async inTransaction<T>(client: pg.PoolClient, fn: (tx: Tx) => Promise<T>, options: TransactionOptions) {
    const conn = wrap(client, this.prepare, this.pipeline ? pipelined : oneByOne());
    let ended = false;
    const tx: Tx = {
      ...conn,
      queryAndCommit: async <R>(text: string, params?: unknown[], options?: QueryOptions) => {
        ended = true;
        const [res] = await Promise.all([conn.query<R>(text, params, options), conn.exec('commit')]);
        return res;
      },
    };
    try {
      // The `begin` (with its settings: one simple-protocol query) is not awaited alone: a
      // pipelined connection sends `fn`'s first statements behind it, in its round trip. Were
      // the begin to fail, they would run outside a transaction; a begin on an idle pooled
      // connection fails only with the connection, which fails them too.
      const begin = conn.exec(options.settings ? `begin; ${localSettingsSql(options.settings)}` : 'begin');
      // Called in an async function: a `fn` that throws at once still leaves `begin` handled.
      const [, result] = await Promise.all([begin, (async () => fn(tx))()]);
      if (!ended) await conn.exec('commit');
      return result;
    } catch (err) {
      if (!readTimedOut(err)) await conn.exec('rollback').catch(() => undefined);
      throw err;
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

/** Statement names by text (a hash: any length of text, one name). */
const names = new Map<string, string>();

/**
 * The query pg sends: named when asked to prepare it (`QueryOptions.prepare`). A named statement
 * is parsed once per connection, and Postgres' plan cache may keep its plan: a reflection's
 * change set spent 0.2-0.6 ms parsing and 0.4-1.2 ms planning each of its statements
 * (`npm run bench:statements` with DATABASE_PREPARE=false).
 */
function prepared(
  text: string,
  values: unknown[] | undefined,
  options: QueryOptions | undefined,
  allowed: boolean,
): pg.QueryConfig {
  if (!allowed || !options?.prepare) return { text, values };
  let name = names.get(text);
  if (!name) {
    name = `engram_${createHash('sha1').update(text).digest('hex').slice(0, 24)}`;
    names.set(text, name);
  }
  return { name, text, values };
}

/**
 * A checked-out connection's statements, sent in `order`. `exec` takes statements without
 * parameters whose results nobody reads (begin, commit, several at once).
 */
function wrap(client: pg.PoolClient, prepare: boolean, order: Order = pipelined): Queryable {
  return {
    query: <R>(text: string, params?: unknown[], options?: QueryOptions) =>
      order(async () => normalize<R>(await client.query(prepared(text, params, options, prepare)))),
    exec: (text: string) => order(async () => void (await client.query(text))),
  };
}

/** When a transaction's statement goes out: as soon as it is issued, or after the one before. */
type Order = <T>(send: () => Promise<T>) => Promise<T>;

/** A pipelined connection sends each statement when issued. */
const pipelined: Order = (send) => send();

/**
 * Without pipelining (DATABASE_PIPELINE off), a statement goes out once the one before is
 * answered: engram queues them itself, as pg deprecates queueing on a client not pipelined.
 */
function oneByOne(): Order {
  let last: Promise<unknown> = Promise.resolve();
  return <T>(send: () => Promise<T>) => {
    const run = last.then(send);
    last = run.catch(() => undefined);
    return run;
  };
}

function normalize<R>(res: pg.QueryResult): QueryResult<R> {
  return { rows: res.rows as R[], rowCount: res.rowCount ?? res.rows.length };
}
