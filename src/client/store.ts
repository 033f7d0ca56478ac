import {
  batchResponse,
  deletedResponse,
  historyResponse,
  itemResponse,
  itemsResponse,
  namespacesResponse,
} from '../api/schemas.js';
import type { BatchOp, DeleteInput, GetInput, ListNamespacesInput, PutInput, SearchInput } from '../store/schemas.js';
import type { BatchResult, HistoryEntry, MemoryItem, Namespace, SearchItem } from '../store/types.js';
import type { Transport } from './http.js';
import type { CallOptions } from './options.js';
import { namespaceQuery } from './query.js';

/** Batch ops that only read: a batch of them is safe to send again. */
const READS = new Set(['get', 'search', 'listNamespaces']);

/**
 * The store API over HTTP, with the SDK's call shapes (`put(namespace, key, value, options)`).
 * Reads are retried after a 503 or a lost connection; puts and deletes never are: a put or
 * delete that landed before its answer was lost would, sent again, write another version (or,
 * with `ifVersion`, fail as a conflict with itself). The caller decides, reading the item back.
 */
export class HttpStoreClient {
  constructor(private readonly http: Transport) {}

  async put(
    namespace: Namespace,
    key: string,
    value: Record<string, unknown>,
    options: Omit<PutInput, 'namespace' | 'key' | 'value'> = {},
    call?: CallOptions,
  ): Promise<MemoryItem> {
    const body = { namespace, key, value, ...options };
    const answer = await this.http.send(
      { method: 'PUT', path: '/v1/store/items', body, answer: itemResponse, idempotent: false },
      call,
    );
    return answer.item;
  }

  /** The item, or null when it is missing or expired. */
  async get(
    namespace: Namespace,
    key: string,
    options: Omit<GetInput, 'namespace' | 'key'> = {},
    call?: CallOptions,
  ): Promise<MemoryItem | null> {
    const answer = await this.http.send(
      {
        method: 'GET',
        path: '/v1/store/items',
        query: namespaceQuery(namespace, { key, ...options }),
        answer: itemResponse.nullable(),
        idempotent: true,
        nullOn404: true,
      },
      call,
    );
    return answer?.item ?? null;
  }

  /** True when a live item was deleted. */
  async delete(
    namespace: Namespace,
    key: string,
    options: Omit<DeleteInput, 'namespace' | 'key'> = {},
    call?: CallOptions,
  ): Promise<boolean> {
    const body = { namespace, key, ...options };
    const answer = await this.http.send(
      { method: 'DELETE', path: '/v1/store/items', body, answer: deletedResponse, idempotent: false },
      call,
    );
    return answer.deleted;
  }

  async search(
    namespacePrefix: Namespace,
    options: Omit<SearchInput, 'namespacePrefix'> = {},
    call?: CallOptions,
  ): Promise<SearchItem[]> {
    const body = { namespacePrefix, ...options };
    const answer = await this.http.send(
      { method: 'POST', path: '/v1/store/items/search', body, answer: itemsResponse, idempotent: true },
      call,
    );
    return answer.items;
  }

  async listNamespaces(options: ListNamespacesInput = {}, call?: CallOptions): Promise<Namespace[]> {
    const answer = await this.http.send(
      { method: 'POST', path: '/v1/store/namespaces', body: options, answer: namespacesResponse, idempotent: true },
      call,
    );
    return answer.namespaces;
  }

  /** Writes first, atomically and with one embedding call; then reads, which see them. */
  async batch(ops: BatchOp[], call?: CallOptions): Promise<BatchResult[]> {
    const answer = await this.http.send(
      {
        method: 'POST',
        path: '/v1/store/batch',
        body: { ops },
        answer: batchResponse,
        idempotent: ops.every((op) => READS.has(op.op)),
      },
      call,
    );
    return answer.results;
  }

  /** Oldest first, `limit` (100, at most 1,000) rows from `offset` (0). */
  async history(
    namespace: Namespace,
    key: string,
    page: { limit?: number; offset?: number } = {},
    call?: CallOptions,
  ): Promise<HistoryEntry[]> {
    const answer = await this.http.send(
      {
        method: 'GET',
        path: '/v1/store/items/history',
        query: namespaceQuery(namespace, { key, ...page }),
        answer: historyResponse,
        idempotent: true,
      },
      call,
    );
    return answer.history;
  }
}
