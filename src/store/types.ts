import type { Namespace } from '../core/names.js';

export { namespaceSchema, type Namespace } from '../core/names.js';

export interface MemoryItem {
  namespace: Namespace;
  key: string;
  kind: string;
  value: Record<string, unknown>;
  version: number;
  createdAt: Date;
  updatedAt: Date;
  expiresAt: Date | null;
}

export interface ScoredMemory extends MemoryItem {
  /** Cosine similarity of the best-matching embedded field, in [-1, 1]. */
  score: number;
}

/** A search hit: `score` is the similarity, or null for a search without a query. */
export interface SearchItem extends MemoryItem {
  score: number | null;
}

export interface FieldEmbedding {
  field: string;
  vector: number[];
}

/**
 * A write decided by a reflection, with its embeddings computed before the transaction.
 * `ttlMs` is the item's time to live: the database sets `expires_at = now() + ttlMs` (one clock
 * for writes, reads and refreshes) and keeps the duration so that reads can renew it.
 */
export type MemoryWrite =
  | {
      op: 'insert';
      namespace: Namespace;
      key: string;
      kind: string;
      value: Record<string, unknown>;
      embeddings: FieldEmbedding[];
      ttlMs: number | null;
    }
  | {
      op: 'update';
      namespace: Namespace;
      key: string;
      kind: string;
      value: Record<string, unknown>;
      expectedVersion: number;
      embeddings: FieldEmbedding[];
      ttlMs: number | null;
    }
  | { op: 'delete'; namespace: Namespace; key: string; expectedVersion: number };

/**
 * Writes without a thread cursor, as consolidation commits them: each namespace is locked and its
 * version compared (or, when null, only locked and bumped), each update and delete compares its
 * item's version, and `guards` the items relied on. A re-run after a commit finds nothing left
 * to do, so no cursor is needed.
 */
export interface NamespaceChange {
  actor: string;
  /**
   * Versions of the namespaces as the writer saw them; any change since means a conflict. null:
   * locked and bumped, not compared (the writes compare their own items' versions).
   */
  namespaceVersions: { namespace: Namespace; version: number | null }[];
  writes: MemoryWrite[];
  /**
   * Memories the writes rely on without changing them, at the versions read (a merge keeps one
   * memory of a group and deletes the rest: the kept one must still say what it said).
   */
  guards?: { namespace: Namespace; key: string; version: number }[];
}

/** Everything one reflection commits, atomically with the thread cursor. */
export interface ChangeSet extends NamespaceChange {
  threadId: string;
  /** The cursor the reflection read its turns after (null: the thread's first reflection). */
  expectedCursor: string | null;
  newCursor: string;
}

export type ApplyResult =
  | { status: 'applied'; inserted: number; updated: number; deleted: number }
  /** The cursor moved since the reflection read it: another run applied these turns. */
  | { status: 'stale-cursor' }
  /** A namespace changed since the reflection read it: re-run with fresh memories. */
  | { status: 'conflict'; namespace: Namespace };

/** A write of the store API, with its embeddings computed before the transaction. */
export type ItemWrite =
  | {
      op: 'put';
      namespace: Namespace;
      key: string;
      /**
       * Undefined keeps the live item's kind (a new item gets the store's default): an
       * application that edits a reflection's profile and puts it back must not relabel it.
       */
      kind?: string | undefined;
      value: Record<string, unknown>;
      /** Time to live; the database computes the expiry from it (null: none). */
      ttlMs: number | null;
      embeddings: FieldEmbedding[];
      ifVersion?: number | undefined;
      actor?: string | undefined;
    }
  | { op: 'delete'; namespace: Namespace; key: string; ifVersion?: number | undefined; actor?: string | undefined };

export type ItemWriteResult = { op: 'put'; item: MemoryItem } | { op: 'delete'; deleted: boolean };

export interface HistoryEntry {
  op: 'insert' | 'update' | 'delete' | 'expire';
  version: number;
  kind: string;
  before: Record<string, unknown> | null;
  after: Record<string, unknown> | null;
  actor: string;
  threadId: string | null;
  at: Date;
}
