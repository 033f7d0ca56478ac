import type { Logger } from '../observability/logger.js';
import type { AnswerBudget } from './answer-budget.js';
import { annIndexExists, createAnnIndex, dropAnnIndex } from './ann-index.js';
import { applyChangeSet, type ChangeResult, type ChangeSet } from './change-set.js';
import { isApplied, readCursor } from './change-sql.js';
import { withSignal, type Db } from './db.js';
import { eraseScope, type EraseCounts, type EraseRequest } from './erase.js';
import { exportItems } from './export.js';
import { readMergeMembers, type MergeMember } from './merge-members.js';
import type { ExportedHistory, ExportedItem } from './export-format.js';
import { restoreItems, type RestoredItem } from './restore.js';
import {
  changedNamespaces,
  markConsolidated,
  nearDuplicateCandidates,
  type Candidates,
  type CandidateQuery,
  type ChangedNamespace,
  type ConsolidationMark,
} from './near-duplicates.js';
import {
  changesBy,
  documentAt,
  getItems,
  historyLength,
  listNamespaces,
  namespaceVersions,
  readHistory,
  type ActorChange,
  type HistoryPage,
  type ListNamespacesQuery,
} from './read-items.js';
import { refreshTtl } from './refresh-ttl.js';
import type { Consistency } from './schemas.js';
import { searchItems, searchPlan, type SearchQuery, type SearchSettings } from './search.js';
import { readSnapshot, type NamespaceSnapshot, type SnapshotRequest } from './snapshot.js';
import { ANN_INDEX, tables, type Tables } from './sql.js';
import { sweepExpired } from './sweep.js';
import type { HistoryEntry, MemoryItem, Namespace, SearchItem } from './types.js';

export const defaultSearchSettings: SearchSettings = { exactSearchMax: 10_000, efSearch: 100 };

/** `replica`: the read may be served by a read replica, and so lag (the primary when there is none). */
export interface ReadOptions {
  consistency?: Consistency | undefined;
  /** The bytes of stored JSON the answer may still carry (answer-budget.ts); unbounded without. */
  budget?: AnswerBudget | undefined;
  /** Stops the read's statements on Postgres when aborted (its HTTP client went away). */
  signal?: AbortSignal | undefined;
}

/**
 * engram's tables in Postgres + pgvector (or PGlite, same SQL): the one owner of every statement
 * on them. Writes go through the change-set writer (`apply`, rules in change-set.ts); reads are
 * the methods below. Methods take already-computed vectors: embedding happens before a
 * connection is borrowed, so no pooled connection waits on a model (invariant 8). Validation and
 * embedding for the store API live in StoreService (store-service.ts).
 *
 * Reads go to the primary unless the caller says `consistency: 'replica'`, and then to the read
 * Db (DATABASE_READ_URL's replicas) when there is one. The primary by default because a read
 * inside formation is compared at commit: the reflection's snapshot, consolidation's
 * candidates, the prompt optimizer's current version would all see their own writes late on a
 * replica and conflict, or worse. The store API and recall opt in for their callers.
 */
export class MemoryDb {
  private readonly t: Tables;
  private readonly reader: Db;
  /** Whether the HNSW index exists, re-read every 30 s (another process may build or drop it). */
  private annIndex: { exists: Promise<boolean>; at: number } | null = null;
  /** Item counts of namespaces as reflections last read them (bounded: cleared when full). */
  private readonly namespaceSizes = new Map<string, number>();

  constructor(
    private readonly db: Db,
    readonly schema: string,
    private readonly log: Logger,
    readonly searchSettings: SearchSettings = { ...defaultSearchSettings },
    /** Where `consistency: 'replica'` reads go (openReadDb); the primary when null. */
    readDb: Db | null = null,
  ) {
    this.t = tables(schema);
    this.reader = readDb ?? db;
  }

  get backend(): Db['backend'] {
    return this.db.backend;
  }

  /** A round trip to the database (readiness). */
  async ping(): Promise<void> {
    await this.db.query('select 1');
  }

  /** Applies one change set in one transaction: the only way anything is written. */
  apply(change: ChangeSet): Promise<ChangeResult> {
    return applyChangeSet(this.db, this.t, change);
  }

  async get(namespace: Namespace, key: string, opts?: ReadOptions): Promise<MemoryItem | null> {
    const [item] = await getItems(this.from(opts), this.t, [{ namespace, key }]);
    return item ?? null;
  }

  /** Items in one statement, in the order asked; null for a missing or expired one. */
  getMany(refs: { namespace: Namespace; key: string }[], opts?: ReadOptions): Promise<(MemoryItem | null)[]> {
    return getItems(this.from(opts), this.t, refs, opts?.budget);
  }

  /**
   * Renews the expiry of items a read returned (now + their TTL), without a version or history
   * row; returns them with their new `expiresAt`. Reads here never refresh by themselves: the
   * store API decides (`refreshTtl`, `STORE_REFRESH_TTL_ON_READ`). A write: always the primary,
   * whichever Db served the read.
   */
  refreshTtl<T extends MemoryItem>(items: T[]): Promise<T[]> {
    return refreshTtl(this.db, this.t, items);
  }

  /** Items of one namespace or under a prefix (whole labels), by similarity when a vector is given. */
  search(query: SearchQuery, opts?: ReadOptions): Promise<SearchItem[]> {
    const q = opts?.budget ? { ...query, budget: opts.budget } : query;
    return searchItems(this.from(opts), this.t, q, this.searchSettings, () => this.hasAnnIndex());
  }

  /** Which ranking `search` would use for this query (for tests and operators). */
  searchPlan(query: SearchQuery, opts?: ReadOptions): Promise<'exact' | 'ann' | 'filter'> {
    return searchPlan(this.from(opts), this.t, query, this.searchSettings, () => this.hasAnnIndex());
  }

  listNamespaces(query: ListNamespacesQuery, opts?: ReadOptions): Promise<Namespace[]> {
    return listNamespaces(this.from(opts), this.t, query);
  }

  /** Each namespace's version (0 for one never written), in the order asked. */
  namespaceVersions(namespaces: Namespace[], opts?: ReadOptions): Promise<number[]> {
    return namespaceVersions(this.from(opts), this.t, namespaces);
  }

  /** The change log of one memory, oldest first; all of it without a page. */
  history(namespace: Namespace, key: string, page?: HistoryPage, opts?: ReadOptions): Promise<HistoryEntry[]> {
    return readHistory(this.from(opts), this.t, namespace, key, page, opts?.budget);
  }

  /** How many changes one memory's history holds (memory_history's "earlier changes left out"). */
  historyLength(namespace: Namespace, key: string, opts?: ReadOptions): Promise<number> {
    return historyLength(this.from(opts), this.t, namespace, key);
  }

  /** The document a version of one memory set, or null (read-items.ts documentAt). */
  documentAt(namespace: Namespace, key: string, version: number) {
    return documentAt(this.db, this.t, namespace, key, version);
  }

  /** Every change `actor` made under `prefix` (expiries aside), oldest first, at most `limit`. */
  changesBy(actor: string, prefix: Namespace, limit: number): Promise<ActorChange[]> {
    return changesBy(this.db, this.t, actor, prefix, limit);
  }

  /**
   * What a reflection is shown: namespace versions, relevant memories, profiles (snapshot.ts).
   * Always the primary: the versions it returns are compared at commit.
   */
  async reflectionSnapshot(
    requests: SnapshotRequest[],
    vectors: number[][],
    topK: number,
  ): Promise<NamespaceSnapshot[]> {
    // A namespace past the exact-search size is ranked through the HNSW index, when there is
    // one: an exact read of 100,000 vectors costs a reflection tens of milliseconds a query. Its
    // size is the one the last snapshot of it returned (sizes move slowly; the first read of a
    // namespace is exact).
    const large = (r: SnapshotRequest) =>
      (this.namespaceSizes.get(JSON.stringify(r.namespace)) ?? 0) > this.searchSettings.exactSearchMax;
    const approximate = requests.some(large) && (await this.hasAnnIndex()) ? requests.map(large) : [];
    const snapshots = await readSnapshot(
      this.db,
      this.t,
      requests,
      vectors,
      topK,
      approximate,
      this.searchSettings.efSearch,
    );
    for (const s of snapshots) {
      if (this.namespaceSizes.size >= 10_000) this.namespaceSizes.clear();
      this.namespaceSizes.set(JSON.stringify(s.namespace), s.items);
    }
    return snapshots;
  }

  cursor(threadId: string): Promise<string | null> {
    return readCursor(this.db, this.t, threadId);
  }

  /**
   * Erases every item and history row under the prefixes and sets the threads' cursors to an
   * erase epoch, in one transaction under the writer's lock order, with a content-free audit row.
   */
  erase(request: EraseRequest): Promise<EraseCounts> {
    return eraseScope(this.db, this.t, request);
  }

  /** The items under the prefixes, each followed by its history when asked (export.ts). */
  exportItems(q: {
    prefixes: Namespace[];
    namespaces?: Namespace[] | undefined;
    history: boolean;
  }): AsyncGenerator<ExportedItem | ExportedHistory> {
    return exportItems(this.db, this.t, q);
  }

  /** Restores exported items and their history into empty keys, in one transaction (restore.ts). */
  restore(items: RestoredItem[], history: ExportedHistory[]) {
    return restoreItems(this.db, this.t, items, history);
  }

  /** Whether a change set with this idempotency key was applied. */
  isApplied(key: string): Promise<boolean> {
    return isApplied(this.db, this.t, key);
  }

  /** Namespaces written since their last consolidation (see near-duplicates.ts). */
  changedNamespaces(limit: number): Promise<ChangedNamespace[]> {
    return changedNamespaces(this.db, this.t, limit);
  }

  nearDuplicateCandidates(q: CandidateQuery): Promise<Candidates> {
    return nearDuplicateCandidates(this.db, this.t, q);
  }

  /** A merge's memories with their last history row and lifetime (merge-members.ts). */
  mergeMembers(namespace: Namespace, keys: string[]): Promise<MergeMember[]> {
    return readMergeMembers(this.db, this.t, namespace, keys);
  }

  markConsolidated(namespace: Namespace, mark: ConsolidationMark): Promise<void> {
    return markConsolidated(this.db, this.t, namespace, mark);
  }

  /** Removes expired memories through the writer, with an `expire` history row each; returns how many. */
  async sweepExpired(actor: string, batch = 1_000): Promise<number> {
    const swept = await sweepExpired(this.db, this.t, actor, batch);
    if (swept) this.log.info({ swept }, 'expired memories swept');
    return swept;
  }

  async createAnnIndex(opts: { maintenanceWorkMem?: string } = {}): Promise<void> {
    await createAnnIndex(this.db, this.t, opts);
    this.annIndex = null;
    this.log.info({ index: ANN_INDEX }, 'ANN index ready');
  }

  async dropAnnIndex(): Promise<void> {
    await dropAnnIndex(this.db, this.t);
    this.annIndex = null;
    this.log.info({ index: ANN_INDEX }, 'ANN index dropped');
  }

  private from(opts: ReadOptions | undefined): Db {
    const db = opts?.consistency === 'replica' ? this.reader : this.db;
    return opts?.signal ? withSignal(db, opts.signal) : db;
  }

  /** On the primary: an index just built there is used at once (a replica has it once replayed). */
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
}
