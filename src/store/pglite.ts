import { closeSync, mkdirSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { PGlite, type Transaction } from '@electric-sql/pglite';
import { vector } from '@electric-sql/pglite-pgvector';
import { PermanentError } from '../errors.js';
import type { Logger } from '../observability/logger.js';
import type { Db, Queryable, QueryResult, Row, TransactionOptions, Tx } from './db.js';
import { localSettingsSql } from './db.js';
import { vectorArrayText, vectorText } from './vector-codec.js';

/**
 * The embedded backend: Postgres compiled to WASM with pgvector, in a data folder (or
 * `memory://` for tests). One connection: PGlite runs every query and transaction exclusively,
 * so a transaction never interleaves with another statement. A data folder belongs to one
 * process: a lock file next to it makes a second process fail with a clear message instead of
 * corrupting it.
 */
export function createPgliteDb(dataDir: string, log: Logger): Db {
  const memory = dataDir.startsWith('memory://');
  const path = memory ? dataDir : resolve(dataDir);
  const release = memory ? () => undefined : lockDataDir(path);
  const db = new PGlite(path, { extensions: { vector } });
  log.info({ dataDir: path }, 'embedded PGlite store');
  return new PgliteDb(db, release);
}

export class PgliteDb implements Db {
  readonly backend = 'pglite';
  private closed = false;

  constructor(
    readonly pg: PGlite,
    private readonly release: () => void,
  ) {}

  async query<R = Row>(text: string, params?: unknown[]): Promise<QueryResult<R>> {
    return normalize(await this.pg.query<R>(text, params));
  }

  async exec(text: string): Promise<void> {
    await this.pg.exec(text);
  }

  session<T>(fn: (s: Queryable) => Promise<T>): Promise<T> {
    return fn(this);
  }

  transaction<T>(fn: (tx: Tx) => Promise<T>, options: TransactionOptions = {}): Promise<T> {
    return this.pg.transaction(async (inner: Transaction) => {
      if (options.settings) await inner.exec(localSettingsSql(options.settings));
      const query = async <R>(text: string, params?: unknown[]) => normalize(await inner.query<R>(text, params));
      // PGlite commits when `fn` returns: one process, no round trip to save.
      return fn({ query, queryAndCommit: query, exec: async (text: string) => void (await inner.exec(text)) });
    });
  }

  vectorParam(v: number[]): unknown {
    return vectorText(v);
  }

  async vectorArrayParam(vectors: number[][]): Promise<unknown> {
    return vectorArrayText(vectors);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    try {
      await this.pg.close();
    } finally {
      this.release();
    }
  }
}

/** PGlite's affectedRows counts only INSERT/UPDATE/DELETE rows (0 for a SELECT). */
function normalize<R>(res: { rows: R[]; affectedRows?: number }): QueryResult<R> {
  return { rows: res.rows, rowCount: Math.max(res.rows.length, res.affectedRows ?? 0) };
}

/** `<dataDir>.lock` holds the owner's pid; a lock left by a dead process is taken over. */
function lockDataDir(dataDir: string): () => void {
  const lockPath = `${dataDir}.lock`;
  mkdirSync(dirname(lockPath), { recursive: true });
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(lockPath, 'wx');
      writeSync(fd, String(process.pid));
      closeSync(fd);
      return () => rmSync(lockPath, { force: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const owner = Number(readFileSync(lockPath, 'utf8'));
      if (owner && isAlive(owner)) {
        throw new PermanentError(
          `the PGlite data folder ${dataDir} is in use by ${owner === process.pid ? 'this process' : `process ${owner}`}; ` +
            'PGlite serves one process and one open handle ' +
            '(run the all-in-one process, or set DATABASE_URL to share a Postgres between processes)',
        );
      }
      rmSync(lockPath, { force: true });
    }
  }
  throw new PermanentError(`could not lock the PGlite data folder ${dataDir} (${lockPath})`);
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
