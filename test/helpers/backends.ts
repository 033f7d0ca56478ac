import type { Embedder } from '../../src/llm/embedder.js';
import { createLogger } from '../../src/observability/logger.js';
import {
  localSettingsSql,
  type Db,
  type Queryable,
  type QueryOptions,
  type TransactionOptions,
  type Tx,
} from '../../src/store/db.js';
import { MemoryDb } from '../../src/store/memory-db.js';
import { migrate } from '../../src/store/migrate.js';
import { createPgliteDb } from '../../src/store/pglite.js';
import { createPgDb } from '../../src/store/pool.js';
import type { SearchSettings } from '../../src/store/search.js';
import { StoreService } from '../../src/store/store-service.js';
import { fakeEmbedding } from '../fake-model/embedding.js';
import { TEST_DATABASE_URL, TEST_DIMENSIONS, uniqueName } from './harness.js';

export const silent = createLogger({ level: 'silent' });

/**
 * The two backends every store test runs against: real Postgres + pgvector (a schema per
 * suite, dropped after) and PGlite in memory (the embedded default, same SQL).
 */
export interface Backend {
  name: 'postgres' | 'pglite';
  open(): Promise<{ db: Db; schema: string; close(): Promise<void> }>;
}

export const pgBackend: Backend = {
  name: 'postgres',
  async open() {
    const db = createPgDb(TEST_DATABASE_URL, 8, silent);
    const schema = uniqueName('store');
    return {
      db,
      schema,
      async close() {
        await dropSchema(db, schema);
        await db.close();
      },
    };
  },
};

export const pgliteBackend: Backend = {
  name: 'pglite',
  async open() {
    const db = createPgliteDb('memory://', silent);
    return { db, schema: uniqueName('store'), close: () => db.close() };
  },
};

export const backends = [pgBackend, pgliteBackend];

/** `db`, telling `onQuery` the text of each query first (to count the statements of one kind). */
export function observedDb(db: Db, onQuery: (text: string) => void): Db {
  return new Proxy(db, {
    get(target, prop) {
      if (prop === 'query')
        return (text: string, params?: unknown[], options?: QueryOptions) => (
          onQuery(text),
          target.query(text, params, options)
        );
      // A transaction's statements are told too, its local settings (sent with its begin) first.
      if (prop === 'transaction')
        return <T>(fn: (tx: Tx) => Promise<T>, options?: TransactionOptions) => {
          if (options?.settings) onQuery(localSettingsSql(options.settings));
          return target.transaction(
            (tx) =>
              fn({
                ...tx,
                query: (text: string, params?: unknown[], o?: QueryOptions) => (
                  onQuery(text),
                  tx.query(text, params, o)
                ),
                queryAndCommit: (text: string, params?: unknown[], o?: QueryOptions) => (
                  onQuery(text),
                  tx.queryAndCommit(text, params, o)
                ),
              }),
            options,
          );
        };
      const value = Reflect.get(target, prop) as unknown;
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}

/**
 * A Db that counts what it holds open (transactions, sessions, queries in flight), so a test can
 * check that no connection is held while the model embeds (invariant 8) on either backend.
 */
export class TrackingDb implements Db {
  busy = 0;
  constructor(private readonly inner: Db) {}
  get backend() {
    return this.inner.backend;
  }
  private async hold<T>(fn: () => Promise<T>): Promise<T> {
    this.busy++;
    try {
      return await fn();
    } finally {
      this.busy--;
    }
  }
  query<R>(text: string, params?: unknown[], options?: QueryOptions) {
    return this.hold(() => this.inner.query<R>(text, params, options));
  }
  exec(text: string) {
    return this.hold(() => this.inner.exec(text));
  }
  transaction<T>(fn: (tx: Tx) => Promise<T>, options?: TransactionOptions) {
    return this.hold(() => this.inner.transaction(fn, options));
  }
  session<T>(fn: (s: Queryable) => Promise<T>) {
    return this.hold(() => this.inner.session(fn));
  }
  vectorParam(v: number[]) {
    return this.inner.vectorParam(v);
  }
  vectorArrayParam(v: number[][]) {
    return this.inner.vectorArrayParam(v);
  }
  close() {
    return this.inner.close();
  }
}

/** The fake model's deterministic embedding, in process; records each call's texts. */
export class TestEmbedder implements Embedder {
  constructor(readonly dimensions = TEST_DIMENSIONS) {}
  calls: string[][] = [];
  /** Called at the start of every embed (to check what is held meanwhile). */
  onEmbed: (() => void) | null = null;
  /** Fixed vectors for some texts (recall tests), the bag-of-words embedding for the rest. */
  fixed = new Map<string, number[]>();
  async embed(texts: string[]): Promise<number[][]> {
    this.onEmbed?.();
    this.calls.push(texts);
    return texts.map((t) => this.fixed.get(t) ?? fakeEmbedding(t, this.dimensions));
  }
}

export interface StoreFixture {
  db: TrackingDb;
  schema: string;
  memories: MemoryDb;
  store: StoreService;
  embedder: TestEmbedder;
  close(): Promise<void>;
}

type StoreFixtureOptions = {
  search?: Partial<SearchSettings>;
  defaultTtlMs?: number;
  vectorStorage?: 'float' | 'half';
  /** The schema's and the embedder's dimensions (TEST_DIMENSIONS when unset). */
  dimensions?: number;
};

/** A migrated schema on `backend` with the store API over it. */
export async function openStore(backend: Backend, opts: StoreFixtureOptions = {}): Promise<StoreFixture> {
  const { db, schema, close } = await backend.open();
  return storeFixture(db, schema, close, opts);
}

/**
 * A test's own migrated schema in an already open database, dropped by `close`: a schema per
 * test without starting a PGlite per test (about 4 s each).
 */
export function openSchemaStore(db: Db, opts: StoreFixtureOptions = {}): Promise<StoreFixture> {
  const schema = uniqueName('store');
  return storeFixture(db, schema, () => dropSchema(db, schema), opts);
}

async function dropSchema(db: Db, schema: string): Promise<void> {
  await db.query(`drop schema if exists "${schema}" cascade`);
}

async function storeFixture(
  raw: Db,
  schema: string,
  close: () => Promise<void>,
  opts: StoreFixtureOptions,
): Promise<StoreFixture> {
  const db = new TrackingDb(raw);
  await migrate(db, {
    schema,
    dimensions: opts.dimensions ?? TEST_DIMENSIONS,
    log: silent,
    vectorStorage: opts.vectorStorage,
  });
  const memories = new MemoryDb(db, schema, silent, { exactSearchMax: 10_000, efSearch: 100, ...opts.search });
  const embedder = new TestEmbedder(opts.dimensions);
  const store = new StoreService(memories, {
    embedder,
    indexFields: ['$'],
    defaultTtlMs: opts.defaultTtlMs ?? null,
    refreshTtlOnRead: true,
    defaultKind: 'memory',
    actor: 'test',
    log: silent,
  });
  return { db, schema, memories, store, embedder, close };
}

/** Seeded pseudo-random unit vectors (recall tests need many distinct, reproducible vectors). */
export function randomUnitVector(seed: number, dims = TEST_DIMENSIONS): number[] {
  let s = seed >>> 0 || 1;
  const v = Array.from({ length: dims }, () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 0xffffffff - 0.5;
  });
  const norm = Math.hypot(...v);
  return v.map((x) => x / norm);
}

export function cosine(a: number[], b: number[]): number {
  let dot = 0;
  for (let i = 0; i < a.length; i++) dot += (a[i] as number) * (b[i] as number);
  return dot / (Math.hypot(...a) * Math.hypot(...b));
}
