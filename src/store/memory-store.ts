import type { Logger } from '../observability/logger.js';
import { applyChangeSet } from './apply.js';
import {
  changedNamespaces,
  markConsolidated,
  nearDuplicateCandidates,
  type Candidates,
  type ChangedNamespace,
  type ConsolidationMark,
} from './near-duplicates.js';
import type { Db } from './db.js';
import { COLUMNS, getItems, listNamespaces, scored, type ListNamespacesQuery } from './read-items.js';
import { refreshTtl } from './refresh-ttl.js';
import { annIndexExists, searchItems, searchPlan, type SearchQuery, type SearchSettings } from './search.js';
import { ANN_INDEX, ident, tables, type Tables } from './sql.js';
import { sweepExpired } from './sweep.js';
import type {
  ApplyResult,
  ChangeSet,
  HistoryEntry,
  NamespaceChange,
  ItemWrite,
  ItemWriteResult,
  MemoryItem,
  Namespace,
  ScoredMemory,
  SearchItem,
} from './types.js';
import { writeItems, type WriteDefaults } from './write-items.js';

export const defaultSearchSettings: SearchSettings = { exactSearchMax: 10_000, efSearch: 100 };

/**
 * Memories in Postgres + pgvector (or PGlite, same SQL). Methods take already-computed vectors:
 * embedding happens before a connection is borrowed, so no pooled connection waits on a model
 * (invariant 8). The store API with validation and embedding is `Store` (store.ts).
 */
export class MemoryStore {
  readonly t: Tables;
  /** Whether the HNSW index exists, re-read every 30 s (another process may build or drop it). */
  private annIndex: { exists: Promise<boolean>; at: number } | null = null;

  constructor(
    readonly db: Db,
    readonly schema: string,
    private readonly log: Logger,
    readonly searchSettings: SearchSettings = { ...defaultSearchSettings },
  ) {
    this.t = tables(schema);
  }

  /**
   * Exact nearest neighbours within one namespace (recall 1.0: no ANN index between the filter
   * and the ranking). Items with several embedded fields rank by their best field.
   */
  async search(namespace: Namespace, vector: number[], limit: number, offset = 0): Promise<ScoredMemory[]> {
    const res = await this.db.query(
      `select ${COLUMNS}, d.distance
         from (select v.key, min(v.embedding <=> $2::vector) as distance
                 from ${this.t.vectors} v where v.namespace = $1 group by v.key) d
         join ${this.t.memories} m on m.namespace = $1 and m.key = d.key
        where m.expires_at is null or m.expires_at > now()
        order by d.distance, m.key
        limit $3 offset $4`,
      [namespace, this.db.vectorParam(vector), limit, offset],
    );
    // Every row has a distance here, so every score is a number.
    return res.rows.map((r) => scored(r) as ScoredMemory);
  }

  async get(namespace: Namespace, key: string): Promise<MemoryItem | null> {
    const [item] = await getItems(this.db, this.t, [{ namespace, key }]);
    return item ?? null;
  }

  /** Items in one statement, in the order asked; null for a missing or expired one. */
  getMany(refs: { namespace: Namespace; key: string }[]): Promise<(MemoryItem | null)[]> {
    return getItems(this.db, this.t, refs);
  }

  /**
   * Renews the expiry of items a read returned (now + their TTL), without a version or history
   * row; returns them with their new `expiresAt`. Reads here never refresh by themselves: the
   * store API decides (`refreshTtl`, `STORE_REFRESH_TTL_ON_READ`).
   */
  refreshTtl<T extends MemoryItem>(items: T[]): Promise<T[]> {
    return refreshTtl(this.db, this.t, items);
  }

  /**
   * Puts and deletes in one transaction; a stale `ifVersion` throws a 409 InputError. `defaults`
   * are the actor of writes that name none and the kind of new items put without one.
   */
  write(writes: ItemWrite[], defaults: WriteDefaults): Promise<ItemWriteResult[]> {
    return writeItems(this.db, this.t, writes, defaults);
  }

  /** Items under a namespace prefix (whole labels), by similarity when a vector is given. */
  searchPrefix(query: SearchQuery): Promise<SearchItem[]> {
    return searchItems(this.db, this.t, query, this.searchSettings, () => this.hasAnnIndex());
  }

  /** Which ranking `searchPrefix` would use for this query (for tests and operators). */
  searchPlan(query: SearchQuery): Promise<'exact' | 'ann' | 'filter'> {
    return searchPlan(this.db, this.t, query, this.searchSettings, () => this.hasAnnIndex());
  }

  private hasAnnIndex(): Promise<boolean> {
    if (!this.annIndex || Date.now() - this.annIndex.at > 30_000) {
      const exists = annIndexExists(this.db, this.t).catch((err: unknown) => {
        this.annIndex = null;
        throw err;
      });
      this.annIndex = { exists, at: Date.now() };
    }
    return this.annIndex.exists;
  }

  listNamespaces(query: ListNamespacesQuery): Promise<Namespace[]> {
    return listNamespaces(this.db, this.t, query);
  }

  /** The versions a reflection compares at commit time (0 for a namespace never written). */
  async namespaceVersions(namespaces: Namespace[]): Promise<Map<string, number>> {
    const versions = new Map<string, number>();
    for (const ns of namespaces) {
      const row = await this.db.query<{ version: unknown }>(
        `select version from ${this.t.namespaces} where namespace = $1`,
        [ns],
      );
      versions.set(JSON.stringify(ns), row.rows[0] ? Number(row.rows[0].version) : 0);
    }
    return versions;
  }

  async getCursor(threadId: string): Promise<string | null> {
    const res = await this.db.query<{ cursor: string }>(`select cursor from ${this.t.cursors} where thread_id = $1`, [
      threadId,
    ]);
    return res.rows[0]?.cursor || null;
  }

  /** One transaction: namespace locks, version checks, writes, history, cursor. */
  async apply(change: ChangeSet | NamespaceChange): Promise<ApplyResult> {
    return applyChangeSet(this.db, this.t, change);
  }

  /** Namespaces written since their last consolidation (see near-duplicates.ts). */
  changedNamespaces(limit: number): Promise<ChangedNamespace[]> {
    return changedNamespaces(this.db, this.t, limit);
  }

  nearDuplicateCandidates(q: Parameters<typeof nearDuplicateCandidates>[2]): Promise<Candidates> {
    return nearDuplicateCandidates(this.db, this.t, q);
  }

  markConsolidated(namespace: Namespace, mark: ConsolidationMark): Promise<void> {
    return markConsolidated(this.db, this.t, namespace, mark);
  }

  /** Deletes expired memories, with an `expire` history row each; returns how many. */
  async sweepExpired(actor: string, batch = 1_000): Promise<number> {
    const swept = await sweepExpired(this.db, this.t, actor, batch);
    if (swept) this.log.info({ swept }, 'expired memories swept');
    return swept;
  }

  /** The change log of one memory, oldest first; all of it without a page. */
  async history(namespace: Namespace, key: string, page?: { limit: number; offset: number }): Promise<HistoryEntry[]> {
    const res = await this.db.query(
      `select op, version, kind, before, after, actor, thread_id, created_at from ${this.t.history} where namespace = $1 and key = $2 order by id
       limit $3 offset $4`,
      [namespace, key, page?.limit ?? null, page?.offset ?? 0],
    );
    return res.rows.map((r) => ({
      op: r.op as HistoryEntry['op'],
      version: Number(r.version),
      kind: r.kind as string,
      before: r.before as Record<string, unknown> | null,
      after: r.after as Record<string, unknown> | null,
      actor: r.actor as string,
      threadId: r.thread_id as string | null,
      at: r.created_at as Date,
    }));
  }

  /**
   * Builds the HNSW index that large prefix searches use (an operator step, not a migration:
   * keeping it current costs every put an index insert, measured in `npm run bench:store`).
   */
  async createAnnIndex(opts: { maintenanceWorkMem?: string } = {}): Promise<void> {
    // Concurrently on Postgres: puts go on while it builds. PGlite has one connection anyway.
    const concurrently = this.db.backend === 'postgres' ? 'concurrently' : '';
    await this.db.session(async (s) => {
      // Minutes at a few hundred thousand vectors: lift the pool's statement timeout for this one.
      await s.query(`select set_config('statement_timeout', '0', false)`);
      // PGlite is 32-bit WASM (2 GB of memory in all): it keeps its default.
      if (opts.maintenanceWorkMem && this.db.backend === 'postgres')
        await s.query(`select set_config('maintenance_work_mem', $1, false)`, [opts.maintenanceWorkMem]);
      await s.exec(
        `create index ${concurrently} if not exists ${ident(ANN_INDEX)} on ${this.t.vectors} using hnsw (embedding vector_cosine_ops)`,
      );
    });
    this.annIndex = null;
    this.log.info({ index: ANN_INDEX }, 'ANN index ready');
  }

  async dropAnnIndex(): Promise<void> {
    await this.db.exec(`drop index if exists ${this.t.annIndex}`);
    this.annIndex = null;
  }
}
