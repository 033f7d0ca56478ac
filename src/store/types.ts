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
  /** Since when the memory holds (for a reflection's memory, the time of the turns that said it). */
  validFrom: Date;
  /** When a later change said it no longer holds; null while it does. Search leaves it out. */
  invalidAt: Date | null;
}

export interface ScoredMemory extends MemoryItem {
  /** Cosine similarity of the best-matching embedded field, in [-1, 1]. */
  score: number;
}

/** A search hit: `score` is the similarity, or null for a search without a query. */
export interface SearchItem extends MemoryItem {
  score: number | null;
}

/**
 * An indexed field of an item (a JSON path, `$` for the whole value): its text, which full-text
 * search ranks, and its vector when an embedder computed one.
 */
export interface IndexedField {
  field: string;
  text: string;
  vector?: number[] | undefined;
}

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
