/**
 * The little the store needs from a database, so that one set of SQL runs on a Postgres pool and
 * on embedded PGlite. Both backends return parsed jsonb, text[] and timestamptz values; numbers
 * that Postgres sends as bigint may come back as strings, so callers wrap them in Number().
 */
export type Row = Record<string, unknown>;

export interface QueryResult<R = Row> {
  rows: R[];
  rowCount: number;
}

export interface QueryOptions {
  /**
   * Prepare the statement under a name on each connection, once: Postgres then skips parsing it
   * on later runs and may reuse its plan. Only for texts of a bounded number of shapes (values
   * as parameters, never a structure a caller chooses, like a search filter's): each shape is a
   * prepared statement kept on every connection of the pool.
   */
  prepare?: boolean;
  /**
   * Cancels the statement on Postgres when aborted (a read whose HTTP client went away): the
   * connection it ran on is then closed, not pooled. Rejects with the signal's reason.
   */
  signal?: AbortSignal | undefined;
}

export interface Queryable {
  query<R = Row>(text: string, params?: unknown[], options?: QueryOptions): Promise<QueryResult<R>>;
  /** Several statements without parameters (migrations). */
  exec(text: string): Promise<void>;
}

/**
 * A transaction's connection. On Postgres its statements are pipelined: the `begin` is not
 * awaited on its own, and statements issued without awaiting the ones before them (the locks and
 * the claim of a change set) travel together, each still run in order by the server.
 */
export interface Tx extends Queryable {
  /**
   * The transaction's last statement, sent with its `commit` in one round trip; nothing may be
   * queried after it. Rejects when either fails (a failed statement makes Postgres answer the
   * commit with a rollback, so nothing of the transaction stays).
   */
  queryAndCommit<R = Row>(text: string, params?: unknown[], options?: QueryOptions): Promise<QueryResult<R>>;
}

export interface Db extends Queryable {
  readonly backend: 'postgres' | 'pglite';
  /**
   * Runs `fn` in one transaction on one connection; rolls back on any throw. Never call an
   * embedding model or `db.query` inside `fn`: the first would hold a connection across a model
   * call (invariant 8), the second deadlocks PGlite's single connection.
   */
  transaction<T>(fn: (tx: Tx) => Promise<T>, options?: TransactionOptions): Promise<T>;
  /** Runs `fn` on one connection outside a transaction (session settings, CREATE INDEX CONCURRENTLY). */
  session<T>(fn: (s: Queryable) => Promise<T>): Promise<T>;
  /** One `vector` parameter, for `$n::vector`. */
  vectorParam(vector: number[]): unknown;
  /** Many vectors in one parameter, for `$n::vector[]` (one bind value whatever the batch size). */
  vectorArrayParam(vectors: number[][]): Promise<unknown>;
  close(): Promise<void>;
}

export interface TransactionOptions {
  /**
   * Settings local to the transaction (`set_config(name, value, true)`), sent with its `begin` in
   * one round trip: a read through the HNSW index needs them, and a statement of their own cost
   * a round trip on every such search and reflection snapshot.
   */
  settings?: Record<string, string>;
  /** Cancels the statement running when aborted, and so the transaction (QueryOptions.signal). */
  signal?: AbortSignal | undefined;
}

/**
 * `db` with `signal` on every statement and transaction it runs: the reads of a request stop
 * on Postgres when the request is abandoned, without each read function taking a signal.
 */
export function withSignal(db: Db, signal: AbortSignal): Db {
  return {
    backend: db.backend,
    query: (text, params, options) => db.query(text, params, { ...options, signal }),
    exec: (text) => db.exec(text),
    transaction: (fn, options) => db.transaction(fn, { ...options, signal }),
    session: (fn) => db.session(fn),
    vectorParam: (vector) => db.vectorParam(vector),
    vectorArrayParam: (vectors) => db.vectorArrayParam(vectors),
    close: () => db.close(),
  };
}

/**
 * The statement that applies settings to the current transaction. Names and values are engram's
 * own (numbers, `relaxed_order`, `off`), inlined because a `begin` sent with them takes no
 * parameters; anything else is refused rather than quoted.
 */
export function localSettingsSql(settings: Record<string, string>): string {
  const calls = Object.entries(settings).map(([name, value]) => {
    if (!/^[a-z_][a-z0-9_.]*$/.test(name) || !/^[a-z0-9_.]+$/i.test(value))
      throw new Error(`not a setting engram sets: ${name}=${value}`);
    return `set_config('${name}', '${value}', true)`;
  });
  return `select ${calls.join(', ')}`;
}
