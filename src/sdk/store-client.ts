import type { StoreService, BatchResult } from '../store/store-service.js';
import type { BatchOp, DeleteInput, GetInput, ListNamespacesInput, PutInput, SearchInput } from '../store/schemas.js';
import type { HistoryEntry, MemoryItem, Namespace, SearchItem } from '../store/types.js';

/**
 * The store API for SDK users, with LangGraph's call shapes (`put(namespace, key, value, opts)`).
 * Each call validates with the same schema as the HTTP API; bad input throws InputError, a stale
 * `ifVersion` throws InputError with `status` 409.
 */
export class StoreClient {
  constructor(private readonly store: StoreService) {}

  put(
    namespace: Namespace,
    key: string,
    value: Record<string, unknown>,
    options: Omit<PutInput, 'namespace' | 'key' | 'value'> = {},
  ): Promise<MemoryItem> {
    return this.store.put({ namespace, key, value, ...options });
  }

  /** `refreshTtl`: renew the item's TTL (default: the client's `store.refreshTtlOnRead`, true). */
  get(
    namespace: Namespace,
    key: string,
    options: Omit<GetInput, 'namespace' | 'key'> = {},
  ): Promise<MemoryItem | null> {
    return this.store.get({ namespace, key, ...options });
  }

  /** True when a live item was deleted. */
  delete(namespace: Namespace, key: string, options: Omit<DeleteInput, 'namespace' | 'key'> = {}): Promise<boolean> {
    return this.store.delete({ namespace, key, ...options });
  }

  search(namespacePrefix: Namespace, options: Omit<SearchInput, 'namespacePrefix'> = {}): Promise<SearchItem[]> {
    return this.store.search({ namespacePrefix, ...options });
  }

  listNamespaces(options: ListNamespacesInput = {}): Promise<Namespace[]> {
    return this.store.listNamespaces(options);
  }

  /** Writes first, atomically and with one embedding call; then reads, which see them. */
  batch(ops: BatchOp[]): Promise<BatchResult[]> {
    return this.store.batch(ops);
  }

  /** Oldest first, `limit` (100, at most 1,000) rows from `offset` (0). */
  history(namespace: Namespace, key: string, page: { limit?: number; offset?: number } = {}): Promise<HistoryEntry[]> {
    return this.store.history({ namespace, key, ...page });
  }
}
